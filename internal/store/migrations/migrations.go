// Package migrations reads a store's embedded schema migrations: files
// migrations/NNNN_name.up.sql and NNNN_name.down.sql, versions ascending to the
// store's latest, gaps allowed. Each store applies them in its own SQL
// dialect and transaction; only the stores import this package.
package migrations

import (
	"cmp"
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

// Load reads the migrations of fsys under migrations/, in ascending order
// of version. Versions need not be contiguous (parallel branches number
// their migrations apart, e.g. 0100_ and 0200_, so that both merge without
// renumbering), but the highest must be latest, and each needs an up and a
// down file: a missing file is a bug in the build, not a database to
// half-migrate.
func Load(fsys fs.FS, latest int) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	byVersion := map[int]*Migration{}
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
			m = &Migration{Version: v}
			byVersion[v] = m
		}
		text := &m.Down
		if dir == "up" {
			text = &m.Up
		}
		if *text != "" {
			return nil, fmt.Errorf("load migrations: two %s files for version %d", dir, v)
		}
		*text = string(b)
	}
	if byVersion[latest] == nil {
		return nil, fmt.Errorf("load migrations: version %d (Latest) needs an up and a down file", latest)
	}
	ms := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("load migrations: version %d needs an up and a down file", m.Version)
		}
		ms = append(ms, *m)
	}
	slices.SortFunc(ms, func(a, b Migration) int { return cmp.Compare(a.Version, b.Version) })
	return ms, nil
}

// Next returns the migration that moves a database at version cur one step
// toward version target, and whether that step is its Up (else its Down);
// done is true when cur is target. A cur or target that is neither 0 nor
// a version of ms is an error: a database migrated by another build is
// left alone rather than guessed at.
func Next(ms []Migration, cur, target int) (m Migration, up, done bool, err error) {
	ci, ok := position(ms, cur)
	if !ok {
		return Migration{}, false, false, fmt.Errorf("migrate: database is at schema version %d, which this build (newest %d) does not know", cur, ms[len(ms)-1].Version)
	}
	ti, ok := position(ms, target)
	if !ok {
		return Migration{}, false, false, fmt.Errorf("migrate: this build has no schema version %d", target)
	}
	switch {
	case ci == ti:
		return Migration{}, false, true, nil
	case ci < ti:
		return ms[ci+1], true, false, nil
	default:
		return ms[ci], false, false, nil
	}
}

// position is the index in ms of version v, -1 for version 0.
func position(ms []Migration, v int) (int, bool) {
	if v == 0 {
		return -1, true
	}
	i := slices.IndexFunc(ms, func(m Migration) bool { return m.Version == v })
	return i, i >= 0
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
