// Package sqlstore is the SQL of store.Store, written once over
// database/sql for every database the control plane supports. A Dialect
// holds the few things in which the databases differ (placeholders, how
// timestamps are kept, row locks, the metadata filter, error codes); the
// packages of the backends (internal/store/sqlite, internal/store/postgres)
// open their connections, migrate their schema and hand both to New. Only
// those packages import it.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"nestbox.dev/internal/errdefs"
)

// Dialect is what one database does differently. A zero field means: ?
// placeholders, timestamps as time.Time, no row locks, driver errors as
// they are, and no metadata filter (a list that asks for one is
// ErrInvalid). TimeLayout must be set.
type Dialect struct {
	// Numbered is true where placeholders are $1, $2, ... (PostgreSQL)
	// rather than ?. Queries are written with ?; Numbered rewrites every
	// ? outside quotes, so PostgreSQL's JSONB operators ?, ?| and ?& cannot
	// be written (jsonb_exists and its kin can).
	Numbered bool
	// TimeLayout is how a timestamp is written in a cursor, in UTC, at
	// the precision the database keeps, so that a cursor holds exactly
	// the value of its row.
	TimeLayout string
	// TimeText is true where timestamps are stored as TimeLayout text
	// (SQLite has no time type: fixed-width UTC text sorts as the times
	// do) rather than passed to and read from the driver as time.Time.
	TimeText bool
	// RowLock is appended to a SELECT that reads a row the transaction
	// will write ("FOR UPDATE"), or "" where a write transaction already
	// holds the database's one write lock (SQLite's BEGIN IMMEDIATE).
	RowLock string
	// KeyLock, run first in a transaction with one text argument (a
	// key), serialises the transactions that run it with the same key,
	// for checks with no row to lock (a count before an insert):
	// PostgreSQL's transaction-scoped advisory lock. "" where write
	// transactions are serialised anyway (SQLite).
	KeyLock string
	// Kind gives a driver error the store's error kind (errdefs), and
	// returns other errors, and nil, as they are.
	Kind func(err error) error
	// MetadataMatch is the condition, and its arguments, that a capsule's
	// metadata holds every pair of m (m is not empty). Keys and values
	// must be arguments, never SQL or JSON path text.
	MetadataMatch func(m map[string]string) (cond string, args []any)
}

// Store is a store.Store over database/sql in one Dialect. It is safe for
// concurrent use.
type Store struct {
	// write serves every write and every transaction.
	write *sql.DB
	// read serves single-statement reads; it may be write.
	read *sql.DB
	d    Dialect
}

// New returns a Store that writes through write and reads through read,
// which may be the same pool. The Store owns both: Close closes them.
// Their schema must be at the version the Store's queries expect.
func New(write, read *sql.DB, d Dialect) *Store {
	if kind := d.Kind; kind == nil {
		d.Kind = func(err error) error { return err }
	} else {
		// An error that has its kind already (a row's Scan gave it one,
		// and the caller asks again) keeps it, without a second wrap.
		d.Kind = func(err error) error {
			if err == nil || errdefs.Code(err) != "internal" {
				return err
			}
			return kind(err)
		}
	}
	return &Store{write: write, read: read, d: d}
}

// Close closes the pools. The Store must not be used afterwards.
func (s *Store) Close() error {
	err := s.write.Close()
	if s.read != s.write {
		err = errors.Join(err, s.read.Close())
	}
	return err
}

// runner is a *sql.DB or a *sql.Tx.
type runner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// conn runs statements written with ? placeholders on a pool or a
// transaction, in the dialect's placeholders, and gives errors of exec and
// query their kind.
type conn struct {
	r runner
	d *Dialect
}

func (c conn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := c.r.ExecContext(ctx, c.d.bind(query), args...)
	return res, c.d.Kind(err)
}

func (c conn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := c.r.QueryContext(ctx, c.d.bind(query), args...)
	return rows, c.d.Kind(err)
}

func (c conn) row(ctx context.Context, query string, args ...any) row {
	return row{c.r.QueryRowContext(ctx, c.d.bind(query), args...), c.d}
}

// row is a *sql.Row whose Scan gives its error a kind, as exec and query
// do: a single-row read of a database that is down is ErrUnavailable like
// any other statement. sql.ErrNoRows stays as it is.
type row struct {
	r *sql.Row
	d *Dialect
}

func (r row) Scan(dst ...any) error {
	err := r.r.Scan(dst...)
	if errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return r.d.Kind(err)
}

// reader and writer are the pools as conns.
func (s *Store) reader() conn { return conn{s.read, &s.d} }
func (s *Store) writer() conn { return conn{s.write, &s.d} }

// inTx runs fn in a write transaction (the driver's default isolation:
// READ COMMITTED for PostgreSQL, SQLite's serial writer) and commits it if
// fn returns nil. fn must run every statement through tx: SQLite's write
// pool has one connection, which tx holds until it ends.
func (s *Store) inTx(ctx context.Context, fn func(tx conn) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return s.d.Kind(err)
	}
	defer tx.Rollback() // after Commit a no-op
	if err := fn(conn{tx, &s.d}); err != nil {
		return err
	}
	return s.d.Kind(tx.Commit())
}

// execOne runs a write that changes at most one row and reports whether
// it changed one.
func (s *Store) execOne(ctx context.Context, query string, args ...any) (bool, error) {
	res, err := s.writer().exec(ctx, query, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// bind rewrites the ? placeholders of query as $1, $2, ... where the
// dialect numbers them. A ? inside a quoted literal or identifier is
// text, not a placeholder.
func (d *Dialect) bind(query string) string {
	if !d.Numbered || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte // the quote we are inside, or 0
	for i := 0; i < len(query); i++ {
		ch := query[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0 // a doubled quote leaves and re-enters: still right
			}
		case ch == '\'' || ch == '"':
			quote = ch
		case ch == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}

// placeholders is "?, ?, ?" for n parameters.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dst ...any) error }

// collect reads every row of rows with scan, and closes rows.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
