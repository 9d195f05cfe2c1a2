package sqlite_test

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"slices"
	"testing"

	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlite"
	"nestbox.dev/internal/store/storetest"
)

func TestConformanceFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "nestbox.db"))
	})
}

func TestConformanceMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, sqlite.Memory) })
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		return open(b, filepath.Join(b.TempDir(), "nestbox.db"))
	})
}

// TestMemoryIsPrivate checks that two in-memory stores are two databases.
func TestMemoryIsPrivate(t *testing.T) {
	a, b := open(t, sqlite.Memory), open(t, sqlite.Memory)
	if err := a.CreateUser(t.Context(), store.User{ID: "u1"}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if _, err := b.GetUser(t.Context(), "u1"); err == nil {
		t.Error("a user created in one in-memory store is found in another")
	}
}

func TestOpenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nestbox.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.CreateUser(t.Context(), store.User{ID: "u1", Email: "a@example.com"}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path)
	if _, err := s.GetUser(t.Context(), "u1"); err != nil {
		t.Errorf("GetUser after reopening: %v", err)
	}
	if v := version(t, rawDB(t, path)); v != sqlite.Latest {
		t.Errorf("schema version after reopening = %d, want %d", v, sqlite.Latest)
	}
}

func TestOpenUsesWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nestbox.db")
	open(t, path)
	var mode string
	if err := rawDB(t, path).QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatalf("PRAGMA journal_mode: %v", err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

func TestOpenOddPath(t *testing.T) {
	// '?', '#' and '%' mean something in a URI; here they are a file name.
	path := filepath.Join(t.TempDir(), "a?b#c%20d.db")
	s := open(t, path)
	if err := s.CreateUser(t.Context(), store.User{ID: "u1"}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if v := version(t, rawDB(t, path)); v != sqlite.Latest {
		t.Errorf("schema version of %s = %d, want %d", path, v, sqlite.Latest)
	}
}

// open opens a store that the test closes when it ends.
func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// rawDB opens path without the store, with foreign keys enforced as the
// store enforces them, and closes it when the test ends.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatalf("sql.Open(%s): %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// version is the schema version recorded in db, 0 without schema_migrations.
func version(t *testing.T, db *sql.DB) int {
	t.Helper()
	if !slices.Contains(tables(t, db), "schema_migrations") {
		return 0
	}
	var v int
	if err := db.QueryRowContext(context.Background(), "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		t.Fatalf("read schema version: %v", err)
	}
	return v
}

// tables lists db's tables, SQLite's own left out, by name.
func tables(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatalf("list tables: %v", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("list tables: %v", err)
	}
	return names
}
