// Package migrations reads a store's embedded schema migrations: files
// migrations/NNNN_name.up.sql and NNNN_name.down.sql, versions from 1 to the
// store's latest in increasing order. Versions may leave gaps (0001, 0100,
// 0200): work on separate branches takes separate ranges, so that branches
// merge without renumbering. Each store applies them in its own SQL dialect
// and transaction; only the stores import this package.
package migrations

import (
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

// Migration is one version of a schema: the SQL that moves a database up
// to it and the SQL that moves it back down.
type Migration struct {
	Version  int
	Up, Down string
}

// Load reads the migrations of fsys under migrations/, in increasing order of
// version. Version 1 and latest must be there, nothing above latest, and
// each version with an up and a down file: a missing file is a bug in the
// build, not a database to half-migrate.
func Load(fsys fs.FS, latest int) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	byVersion := map[int]*Migration{1: {}, latest: {}}
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
		m := byVersion[v]
		if m == nil {
			m = &Migration{}
			byVersion[v] = m
		}
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
	ms := make([]Migration, 0, len(byVersion))
	for v, m := range byVersion {
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("load migrations: version %d needs an up and a down file", v)
		}
		ms = append(ms, *m)
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	return ms, nil
}

// Next returns the migration that moves a database at version cur up one
// step: the first one above cur.
func Next(ms []Migration, cur int) (Migration, bool) {
	for _, m := range ms {
		if m.Version > cur {
			return m, true
		}
	}
	return Migration{}, false
}

// At returns the migration of version v, whose down file moves a database
// at v one step down.
func At(ms []Migration, v int) (Migration, bool) {
	for _, m := range ms {
		if m.Version == v {
			return m, true
		}
	}
	return Migration{}, false
}

// Known reports whether target is a version Migrate can move to: 0 (no
// schema) or one of ms.
func Known(ms []Migration, target int) bool {
	_, ok := At(ms, target)
	return target == 0 || ok
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
