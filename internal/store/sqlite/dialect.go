package sqlite

import (
	"maps"
	"slices"
	"strings"

	"nestbox.dev/internal/store/sqlstore"
)

// timeLayout is how every timestamp is stored: UTC, nanoseconds, fixed
// width. Fixed width makes text order equal time order, so ORDER BY and the
// (created_at, id) cursor comparison work on the text; nanoseconds make a
// time.Time round-trip exactly. Databases written by earlier versions
// hold this format, and cursors handed out carry it: it must not change
// without a migration that rewrites every timestamp.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// dialect is SQLite's part of the shared SQL: ? placeholders, text
// timestamps, no row locks (a write transaction begins IMMEDIATE and holds
// the database's one write lock), and a metadata filter over json_each.
func dialect() sqlstore.Dialect {
	return sqlstore.Dialect{
		TimeLayout:    timeLayout,
		TimeText:      true,
		Kind:          kindOf,
		MetadataMatch: metadataMatch,
	}
}

// metadataMatch asks for each pair of m with json_each rather than
// json_extract: a key is then a plain parameter, never part of a JSON path
// that would need escaping.
func metadataMatch(m map[string]string) (string, []any) {
	var conds []string
	var args []any
	for _, k := range slices.Sorted(maps.Keys(m)) {
		conds = append(conds, "EXISTS (SELECT 1 FROM json_each(capsules.metadata) m WHERE m.key = ? AND m.value = ?)")
		args = append(args, k, m[k])
	}
	return strings.Join(conds, " AND "), args
}
