package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"time"

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
	applied_at TEXT NOT NULL
) STRICT`

// Migrate moves db's schema up or down to version target, one version per
// transaction; 0 removes every table, schema_migrations included. A step
// that fails is rolled back and leaves db at the version before it.
//
// Each step re-reads the current version inside its transaction, so two
// processes migrating the same file at once do not apply a step twice,
// provided db begins its transactions IMMEDIATE as Open's connections do.
func Migrate(ctx context.Context, db *sql.DB, target int) error {
	if target < 0 || target > Latest {
		return errdefs.Invalid("migrate to version %d: versions go from 0 to %d", target, Latest)
	}
	ms, err := migrations.Load(migrationFiles, Latest)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, createVersionTable); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	for {
		done, err := migrateStep(ctx, db, ms, target)
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	if target == 0 {
		if _, err := db.ExecContext(ctx, "DROP TABLE schema_migrations"); err != nil {
			return fmt.Errorf("migrate: drop schema_migrations: %w", err)
		}
	}
	return nil
}

// migrateStep applies the one migration that brings db closer to target,
// and reports done when db already is at target.
func migrateStep(ctx context.Context, db *sql.DB, ms []migrations.Migration, target int) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback() // after Commit a no-op

	var cur int
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&cur); err != nil {
		return false, fmt.Errorf("migrate: read version: %w", err)
	}
	m, up, atTarget, err := migrations.Next(ms, cur, target)
	if err != nil {
		return false, err
	}
	switch {
	case atTarget:
		return true, nil
	case up:
		if _, err := tx.ExecContext(ctx, m.Up); err != nil {
			return false, fmt.Errorf("migrate up to %d: %w", m.Version, err)
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
			m.Version, time.Now().UTC().Format(timeLayout))
		if err != nil {
			return false, fmt.Errorf("migrate up to %d: record version: %w", m.Version, err)
		}
	default:
		if _, err := tx.ExecContext(ctx, m.Down); err != nil {
			return false, fmt.Errorf("migrate down from %d: %w", m.Version, err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM schema_migrations WHERE version = ?", m.Version); err != nil {
			return false, fmt.Errorf("migrate down from %d: record version: %w", m.Version, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate: commit: %w", err)
	}
	return false, nil
}
