// Package postgres is the PostgreSQL implementation of store.Store, for
// fleets of control planes that share one database. Its table code is
// shared with the SQLite store in internal/store/sqlstore, which it runs
// over github.com/jackc/pgx/v5's pool through pgx's database/sql adapter;
// this package holds what is PostgreSQL's own: connecting, the dialect,
// the SQLSTATE codes and the migrations (which use the pool directly). It
// migrates its schema on Open and passes the store's conformance suite
// (storetest). Only the control plane's wiring and tests import it;
// everything else sees store.Store.
package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlstore"
)

// Store is a store.Store in a PostgreSQL database. It is safe for
// concurrent use: every method is one statement or one transaction on a
// connection of the pool, and status changes are compare-and-set in the
// database, so several control planes may share the database.
type Store struct {
	*sqlstore.Store
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string, as pgx parses them) and migrates it to Latest. A
// database whose schema is newer than Latest is an error: this binary would
// not know how to read it.
func Open(ctx context.Context, url string) (*Store, error) {
	if url == "" {
		return nil, errdefs.Invalid("open postgres store: empty URL")
	}
	pool, err := connect(ctx, url)
	if err != nil {
		// The URL may hold a password: it stays out of the message.
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	if err := Migrate(ctx, pool, Latest); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	// Transactions run at the pool's default, READ COMMITTED, which the
	// row locks of sqlstore are written for.
	db := stdlib.OpenDBFromPool(pool)
	return &Store{Store: sqlstore.New(db, db, dialect()), pool: pool}, nil
}

// Close closes the pool's connections, waiting for those in use to be
// returned. The Store must not be used afterwards.
func (s *Store) Close() error {
	err := s.Store.Close() // the adapter's *sql.DB, which leaves the pool open
	s.pool.Close()
	return err
}

// connect opens a pool and checks that a connection works, so that a bad
// URL or an unreachable server fails in Open rather than in the first call.
func connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errdefs.Invalid("parse connection string: %v", err)
	}
	cfg.AfterConnect = utcTimes
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, errdefs.Unavailable("connect: %v", err)
	}
	return pool, nil
}

// utcTimes makes conn scan TIMESTAMPTZ columns in UTC rather than in the
// process's local zone: the same instant either way, but rows then look
// alike whatever machine reads them.
func utcTimes(_ context.Context, conn *pgx.Conn) error {
	conn.TypeMap().RegisterType(&pgtype.Type{
		Name:  "timestamptz",
		OID:   pgtype.TimestamptzOID,
		Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC},
	})
	return nil
}
