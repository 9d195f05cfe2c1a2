package postgres_test

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/postgres"
	"nestbox.dev/internal/store/storetest"
	"nestbox.dev/internal/testenv"
)

// defaultURL is the server the tests use without NESTBOX_TEST_POSTGRES_URL:
// the private one scripts/test-services.sh starts (make test-deps), never
// a server the machine happens to run.
const defaultURL = "postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable"

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, freshDB(t)) })
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store { return open(b, freshDB(b)) })
}

// TestOpenKeepsData checks that Open of a database that is already at
// Latest migrates nothing away.
func TestOpenKeepsData(t *testing.T) {
	dbURL := freshDB(t)
	s, err := postgres.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.CreateUser(t.Context(), store.User{ID: "u1", Email: "a@example.com"}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, dbURL)
	if _, err := s.GetUser(t.Context(), "u1"); err != nil {
		t.Errorf("GetUser after reopening: %v", err)
	}
	if v := version(t, rawDB(t, dbURL)); v != postgres.Latest {
		t.Errorf("schema version after reopening = %d, want %d", v, postgres.Latest)
	}
}

func TestOpenBadURL(t *testing.T) {
	for _, u := range []string{"", "postgres://%zz"} {
		if s, err := postgres.Open(t.Context(), u); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", u)
		}
	}
}

// TestMicroseconds checks that times keep PostgreSQL's precision and that
// finer ones are cut to it, not rejected.
func TestMicroseconds(t *testing.T) {
	s := open(t, freshDB(t))
	for _, tc := range []struct {
		id       string
		in, want time.Time
	}{
		{"micro", time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC), time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC)},
		{"nano", time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC), time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC)},
		{"zoned", time.Date(2025, 1, 2, 5, 4, 5, 1000, time.FixedZone("UTC+2", 7200)), time.Date(2025, 1, 2, 3, 4, 5, 1000, time.UTC)},
	} {
		if err := s.CreateUser(t.Context(), store.User{ID: tc.id, CreatedAt: tc.in}); err != nil {
			t.Fatalf("CreateUser(%s): %v", tc.id, err)
		}
		u, err := s.GetUser(t.Context(), tc.id)
		if err != nil {
			t.Fatalf("GetUser(%s): %v", tc.id, err)
		}
		if !u.CreatedAt.Equal(tc.want) || u.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt of %s = %v, want %v in UTC", tc.id, u.CreatedAt, tc.want)
		}
	}
}

// open opens a store that the test closes when it ends.
func open(t testing.TB, dbURL string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// freshDB creates an empty database of the test's own on the server of
// NESTBOX_TEST_POSTGRES_URL (or defaultURL), drops it when the test ends,
// and returns its URL. Tests of other packages may use the same server at
// the same time: nothing is shared but the server.
func freshDB(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("NESTBOX_TEST_POSTGRES_URL")
	if admin == "" {
		admin = defaultURL
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("NESTBOX_TEST_POSTGRES_URL is not a URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		testenv.Missing(t, "PostgreSQL at "+u.Redacted()+": "+err.Error())
	}
	defer conn.Close(context.WithoutCancel(ctx))

	name := "nbx_test_" + strings.ToLower(rand.Text())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// t.Context is done by now.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// rawDB connects to dbURL without the store and closes the pool when the
// test ends.
func rawDB(t *testing.T, dbURL string) *pgxpool.Pool {
	t.Helper()
	db, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}

// version is the schema version recorded in db, 0 without schema_migrations.
func version(t *testing.T, db *pgxpool.Pool) int {
	t.Helper()
	if !slices.Contains(tables(t, db), "schema_migrations") {
		return 0
	}
	var v int
	if err := db.QueryRow(context.Background(), "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		t.Fatalf("read schema version: %v", err)
	}
	return v
}

// tables lists the tables of db's current schema, by name.
func tables(t *testing.T, db *pgxpool.Pool) []string {
	t.Helper()
	rows, err := db.Query(context.Background(),
		"SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename COLLATE \"C\"")
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	return names
}
