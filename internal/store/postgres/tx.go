package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// querier is a *pgxpool.Pool or a pgx.Tx.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// inTx runs fn in a READ COMMITTED transaction and commits it if fn
// returns nil. Statements that must see each other's effects, or fail
// together, go through tx.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return kindOf(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // after Commit a no-op
	if err := fn(tx); err != nil {
		return err
	}
	return kindOf(tx.Commit(ctx))
}

// execOne runs a write that changes at most one row and reports whether
// it changed one.
func (s *Store) execOne(ctx context.Context, query string, args ...any) (bool, error) {
	tag, err := s.pool.Exec(ctx, query, args...)
	if err != nil {
		return false, kindOf(err)
	}
	return tag.RowsAffected() == 1, nil
}
