package sqlite

import (
	"context"
	"database/sql"
	"embed"

	"nestbox.dev/internal/store/sqlstore"
)

// Latest is the newest schema version, the one Open migrates to. It must
// equal the highest version under migrations/ (versions may have gaps);
// Migrate refuses to run otherwise.
const Latest = 770

// migrationFiles holds NNNN_name.up.sql and NNNN_name.down.sql for every
// version from 1 to Latest. A file may hold several statements.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// schema is SQLite's schema for sqlstore.Migrate. applied_at is text in
// timeLayout, as every timestamp. No lock is needed: two processes
// migrating one file at once do not apply a step twice, provided db begins
// its transactions IMMEDIATE as Open's connections do.
func schema() sqlstore.Schema {
	return sqlstore.Schema{
		Files:  migrationFiles,
		Latest: Latest,
		VersionTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			applied_at TEXT NOT NULL
		) STRICT`,
	}
}

// Migrate moves db's schema up or down to version target, one version per
// transaction; 0 removes every table, schema_migrations included. A step
// that fails is rolled back and leaves db at the version before it. See
// sqlstore.Migrate.
func Migrate(ctx context.Context, db *sql.DB, target int) error {
	return sqlstore.Migrate(ctx, db, dialect(), schema(), target)
}
