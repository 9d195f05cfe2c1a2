// Package migrations reads a store's embedded schema migrations: files
// migrations/NNNN_name.up.sql and NNNN_name.down.sql, versions 1 to the
// store's latest without a gap. Each store applies them in its own SQL
// dialect and transaction; only the stores import this package.
package migrations

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// Migration is one version of a schema: the SQL that moves a database up
// to it and the SQL that moves it back down.
type Migration struct {
	Version  int
	Up, Down string
}

// Load reads the migrations of fsys under migrations/, in order. Versions
// must run from 1 to latest without a gap, each with an up and a down file:
// a missing file is a bug in the build, not a database to half-migrate.
func Load(fsys fs.FS, latest int) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	ms := make([]Migration, latest)
	for _, name := range names {
		v, dir, err := parseMigrationName(strings.TrimPrefix(name, "migrations/"))
		if err != nil {
			return nil, fmt.Errorf("load migrations: %w", err)
		}
		if v > latest {
			return nil, fmt.Errorf("load migrations: %s is newer than Latest (%d)", name, latest)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("load migrations: %w", err)
		}
		m := &ms[v-1]
		m.Version = v
		text := &m.Down
		if dir == "up" {
			text = &m.Up
		}
		if *text != "" {
			return nil, fmt.Errorf("load migrations: two %s files for version %d", dir, v)
		}
		*text = string(b)
	}
	for i, m := range ms {
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("load migrations: version %d needs an up and a down file", i+1)
		}
	}
	return ms, nil
}

// parseMigrationName splits "0001_init.up.sql" into 1 and "up".
func parseMigrationName(name string) (version int, dir string, err error) {
	base, ok := strings.CutSuffix(name, ".sql")
	if !ok {
		return 0, "", fmt.Errorf("migration %q: not a .sql file", name)
	}
	switch {
	case strings.HasSuffix(base, ".up"):
		dir = "up"
	case strings.HasSuffix(base, ".down"):
		dir = "down"
	default:
		return 0, "", fmt.Errorf("migration %q: want NNNN_name.up.sql or NNNN_name.down.sql", name)
	}
	num, _, ok := strings.Cut(base, "_")
	if !ok {
		return 0, "", fmt.Errorf("migration %q: want NNNN_name.up.sql or NNNN_name.down.sql", name)
	}
	version, err = strconv.Atoi(num)
	if err != nil || version < 1 {
		return 0, "", fmt.Errorf("migration %q: bad version %q", name, num)
	}
	return version, dir, nil
}
