// Package sqlite is the embedded implementation of store.Store: the control
// plane's state in one SQLite file, with no server to run. It uses the pure-Go
// driver modernc.org/sqlite, migrates its schema on Open and passes the
// store's conformance suite (storetest). Its table code is shared with the
// PostgreSQL store in internal/store/sqlstore; this package holds what is
// SQLite's own: opening the file, the pragmas, the dialect, the error codes
// and the migrations. Only the control plane's wiring and tests import it;
// everything else sees store.Store.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlstore"
)

// driverName is the name modernc.org/sqlite registers with database/sql.
const driverName = "sqlite"

// Memory is the path of a private in-memory database, for tests.
const Memory = ":memory:"

const (
	// busyTimeoutMS is how long a connection waits for a lock held by
	// another process (a second control plane, the sqlite3 shell, a
	// backup) before it gives up with SQLITE_BUSY.
	busyTimeoutMS = 5000
	// readConns bounds the reading connections. In WAL mode readers never
	// wait for the writer, so a handful serve many concurrent requests.
	readConns = 8
)

// Store is a store.Store in a SQLite database: the shared SQL of
// internal/store/sqlstore over two pools of one file. It is safe for
// concurrent use.
//
// Writes are serialised in this process rather than in SQLite: the write
// pool has exactly one connection, so a writer waits in database/sql's pool
// (where its context can cancel the wait) instead of in SQLite's busy
// handler, where 50 racing writers would poll, back off and eventually fail
// with SQLITE_BUSY. Write transactions also BEGIN IMMEDIATE (_txlock): a
// transaction that reads before it writes takes the write lock up front, so
// it cannot fail to upgrade a read lock when another process wrote in
// between; busy_timeout covers the wait for such a process. Single-statement
// reads go through a read-only pool of readConns connections, which in WAL
// mode never wait for the writer; for Memory both are the one connection,
// since each connection to :memory: is a database of its own.
type Store struct {
	*sqlstore.Store
}

var _ store.Store = (*Store)(nil)

// Open opens the database at path, creating it if needed, and migrates it
// to Latest. path may be Memory for a private in-memory database that
// lives until Close. A database whose schema is newer than Latest is an
// error: this binary would not know how to read it.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errdefs.Invalid("open sqlite store: empty path")
	}
	if path == Memory {
		db, err := openPool(ctx, dsn(path, false), 1)
		if err != nil {
			return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
		}
		if err := Migrate(ctx, db, Latest); err != nil {
			db.Close()
			return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
		}
		return &Store{sqlstore.New(db, db, dialect())}, nil
	}

	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	// The writer comes first: it switches the file to WAL and creates the
	// schema, which the read-only connections could not do.
	write, err := openPool(ctx, dsn(abs, false), 1)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if err := Migrate(ctx, write, Latest); err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	read, err := openPool(ctx, dsn(abs, true), readConns)
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	return &Store{sqlstore.New(write, read, dialect())}, nil
}

// openPool opens a pool of at most n connections and checks that the first
// one works, so that a bad path fails in Open rather than in the first call.
func openPool(ctx context.Context, dsn string, n int) (*sql.DB, error) {
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(n)
	// Idle connections are kept for good: for Memory, closing the only
	// connection would throw the database away.
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// dsn is the driver's data source name for path. The pragmas are set on
// every new connection, since foreign_keys and busy_timeout belong to a
// connection, not to the file.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		// WAL is a property of the file; only the writer sets it. For
		// Memory SQLite keeps its "memory" journal and ignores this.
		q.Add("_pragma", "journal_mode(WAL)")
		q.Set("_txlock", "immediate")
	}
	if path == Memory {
		return path + "?" + q.Encode()
	}
	// A file: URI, so that a path with '?' or '#' in it stays a path.
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}
