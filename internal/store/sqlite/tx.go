package sqlite

import (
	"context"
	"database/sql"
)

// inTx runs fn in a write transaction and commits it if fn returns nil.
// fn must use tx for every statement: the write pool has one connection,
// which tx holds until it ends.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return kindOf(err)
	}
	defer tx.Rollback() // after Commit a no-op
	if err := fn(tx); err != nil {
		return err
	}
	return kindOf(tx.Commit())
}

// execOne runs a write that must change exactly one row and reports
// whether it did.
func (s *Store) execOne(ctx context.Context, query string, args ...any) (bool, error) {
	res, err := s.write.ExecContext(ctx, query, args...)
	if err != nil {
		return false, kindOf(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}
