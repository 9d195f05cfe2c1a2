package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store/migrations"
)

// Schema is a backend's schema: its migration files and the few
// statements around them that are written in its own SQL.
type Schema struct {
	// Files holds migrations/NNNN_name.up.sql and .down.sql for every
	// version up to Latest (see internal/store/migrations).
	Files  fs.FS
	Latest int
	// VersionTable creates, if it does not exist, the migrator's own
	// table schema_migrations (version INTEGER PRIMARY KEY, applied_at a
	// timestamp): one row per applied version. It belongs to no
	// migration, so that Migrate can always read where a database stands.
	VersionTable string
	// Lock, if not "", is run first in every step's transaction to keep
	// processes that migrate one database at once (control planes
	// starting together) from applying a step twice: PostgreSQL's
	// transaction-scoped advisory lock. SQLite needs none, since its
	// write transactions begin IMMEDIATE.
	Lock string
}

// Migrate moves db's schema up or down to version target, one version per
// transaction; 0 removes every table, schema_migrations included. A step
// that fails is rolled back and leaves db at the version before it. Each
// step takes the lock and then reads the version, so the version it acts
// on is the one that the previous holder committed. A database at a
// version newer than Latest is an error and is left as it is: this binary
// would not know how to read it.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, s Schema, target int) error {
	if target < 0 || target > s.Latest {
		return errdefs.Invalid("migrate to version %d: versions go from 0 to %d", target, s.Latest)
	}
	ms, err := migrations.Load(s.Files, s.Latest)
	if err != nil {
		return err
	}
	for {
		done, err := migrateStep(ctx, db, &d, s, ms, target)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// migrateStep applies the one migration that brings db closer to target,
// and reports done when db already is at target.
func migrateStep(ctx context.Context, db *sql.DB, d *Dialect, s Schema, ms []migrations.Migration, target int) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback() // after Commit a no-op
	c := conn{tx, d}

	if s.Lock != "" {
		if _, err := c.exec(ctx, s.Lock); err != nil {
			return false, fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if _, err := c.exec(ctx, s.VersionTable); err != nil {
		return false, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	var cur int
	if err := c.row(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&cur); err != nil {
		return false, fmt.Errorf("migrate: read version: %w", err)
	}
	m, up, atTarget, err := migrations.Next(ms, cur, target)
	if err != nil {
		return false, err
	}
	switch {
	case atTarget && target == 0:
		// Nothing left but the migrator's own table.
		if _, err := c.exec(ctx, "DROP TABLE schema_migrations"); err != nil {
			return false, fmt.Errorf("migrate: drop schema_migrations: %w", err)
		}
		done = true
	case atTarget:
		return true, nil
	case up:
		if err := execScript(ctx, tx, m.Up); err != nil {
			return false, fmt.Errorf("migrate up to %d: %w", m.Version, err)
		}
		_, err := c.exec(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", m.Version, d.time(time.Now()))
		if err != nil {
			return false, fmt.Errorf("migrate up to %d: record version: %w", m.Version, err)
		}
	default:
		if err := execScript(ctx, tx, m.Down); err != nil {
			return false, fmt.Errorf("migrate down from %d: %w", m.Version, err)
		}
		if _, err := c.exec(ctx, "DELETE FROM schema_migrations WHERE version = ?", m.Version); err != nil {
			return false, fmt.Errorf("migrate down from %d: record version: %w", m.Version, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate: commit: %w", err)
	}
	return done, nil
}

// execScript runs a migration file, which may hold several statements. It
// is sent as it is, without arguments and without placeholder rewriting:
// both drivers then run every statement of it (pgx with the simple query
// protocol), inside tx.
func execScript(ctx context.Context, tx *sql.Tx, script string) error {
	if strings.TrimSpace(script) == "" {
		return errors.New("empty migration")
	}
	_, err := tx.ExecContext(ctx, script)
	return err
}
