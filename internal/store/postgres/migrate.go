package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store/migrations"
)

// Latest is the newest schema version, the one Open migrates to. It must
// equal the highest version under migrations/ (versions may have gaps);
// Migrate refuses to run otherwise.
const Latest = 300

// migrationFiles holds NNNN_name.up.sql and NNNN_name.down.sql for every
// version from 1 to Latest. A file may hold several statements.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// createVersionTable is the migrator's own table: one row per applied
// version. It is not part of any migration, so that Migrate can always read
// where a database stands.
const createVersionTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`

// migrateLockKey is the transaction-scoped advisory lock that every
// migration step holds, so that control planes starting together against
// one database migrate it one step at a time, not each step twice. The
// number is arbitrary ("nbxmigr" in ASCII); it only has to be Nestbox's.
const migrateLockKey = 0x6e62786d69677200

// Migrate moves db's schema (in the connection's search_path) up or down to
// version target, one version per transaction; 0 removes every table,
// schema_migrations included. A step that fails is rolled back and leaves
// db at the version before it. A database at a version newer than Latest
// is an error and is left as it is.
func Migrate(ctx context.Context, db *pgxpool.Pool, target int) error {
	if target < 0 || target > Latest {
		return errdefs.Invalid("migrate to version %d: versions go from 0 to %d", target, Latest)
	}
	ms, err := migrations.Load(migrationFiles, Latest)
	if err != nil {
		return err
	}
	for {
		done, err := migrateStep(ctx, db, ms, target)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// migrateStep applies the one migration that brings db closer to target,
// and reports done when db already is at target. Each step takes the
// advisory lock and then reads the version, so the version it acts on is
// the one that the previous holder committed.
func migrateStep(ctx context.Context, db *pgxpool.Pool, ms []migrations.Migration, target int) (done bool, err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // after Commit a no-op

	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrateLockKey)); err != nil {
		return false, fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, createVersionTable); err != nil {
		return false, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	var cur int
	if err := tx.QueryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&cur); err != nil {
		return false, fmt.Errorf("migrate: read version: %w", err)
	}
	m, up, atTarget, err := migrations.Next(ms, cur, target)
	if err != nil {
		return false, err
	}
	switch {
	case atTarget && target == 0:
		// Nothing left but the migrator's own table.
		if _, err := tx.Exec(ctx, "DROP TABLE schema_migrations"); err != nil {
			return false, fmt.Errorf("migrate: drop schema_migrations: %w", err)
		}
		done = true
	case atTarget:
		return true, nil
	case up:
		if err := execScript(ctx, tx, m.Up); err != nil {
			return false, fmt.Errorf("migrate up to %d: %w", m.Version, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", m.Version); err != nil {
			return false, fmt.Errorf("migrate up to %d: record version: %w", m.Version, err)
		}
	default:
		if err := execScript(ctx, tx, m.Down); err != nil {
			return false, fmt.Errorf("migrate down from %d: %w", m.Version, err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM schema_migrations WHERE version = $1", m.Version); err != nil {
			return false, fmt.Errorf("migrate down from %d: record version: %w", m.Version, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("migrate: commit: %w", err)
	}
	return done, nil
}

// execScript runs a migration file, which may hold several statements.
// Without arguments pgx sends it with the simple query protocol, which
// runs them all, inside tx.
func execScript(ctx context.Context, tx pgx.Tx, script string) error {
	if strings.TrimSpace(script) == "" {
		return errors.New("empty migration")
	}
	_, err := tx.Exec(ctx, script)
	return err
}
