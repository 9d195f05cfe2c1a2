package postgres

import (
	"context"
	"embed"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

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

// migrateLockKey is the transaction-scoped advisory lock that every
// migration step holds, so that control planes starting together against
// one database migrate it one step at a time, not each step twice. The
// number is arbitrary ("nbxmigr" in ASCII); it only has to be Nestbox's.
const migrateLockKey = 0x6e62786d69677200

// schema is PostgreSQL's schema for sqlstore.Migrate.
func schema() sqlstore.Schema {
	return sqlstore.Schema{
		Files:  migrationFiles,
		Latest: Latest,
		VersionTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
		)`,
		Lock: "SELECT pg_advisory_xact_lock(" + strconv.FormatInt(migrateLockKey, 10) + ")",
	}
}

// Migrate moves db's schema (in the connection's search_path) up or down to
// version target, one version per transaction; 0 removes every table,
// schema_migrations included. A step that fails is rolled back and leaves
// db at the version before it. A database at a version newer than Latest
// is an error and is left as it is. See sqlstore.Migrate.
func Migrate(ctx context.Context, db *pgxpool.Pool, target int) error {
	sdb := stdlib.OpenDBFromPool(db)
	defer sdb.Close() // leaves the pool open
	return sqlstore.Migrate(ctx, sdb, dialect(), schema(), target)
}
