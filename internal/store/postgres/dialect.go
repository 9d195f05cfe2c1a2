package postgres

import (
	"encoding/json"

	"nestbox.dev/internal/store/sqlstore"
)

// cursorLayout writes created_at in UTC at microseconds, PostgreSQL's
// precision, so that a cursor holds exactly the value in the row. Cursors
// handed out carry it.
const cursorLayout = "2006-01-02T15:04:05.000000Z"

// dialect is PostgreSQL's part of the shared SQL: numbered placeholders,
// TIMESTAMPTZ passed as time.Time (and read in UTC, see utcTimes), row
// locks with FOR UPDATE, and the metadata filter as JSONB containment.
func dialect() sqlstore.Dialect {
	return sqlstore.Dialect{
		Numbered:      true,
		TimeLayout:    cursorLayout,
		RowLock:       "FOR UPDATE",
		KeyLock:       "SELECT pg_advisory_xact_lock(hashtext(?))",
		Kind:          kindOf,
		MetadataMatch: metadataMatch,
	}
}

// metadataMatch is containment of a JSON object of strings: every pair
// must be in the metadata with an equal value. Keys and values are data,
// never part of a JSON path that would need escaping, and the JSONB
// index of capsules.metadata serves the condition.
func metadataMatch(m map[string]string) (string, []any) {
	b, _ := json.Marshal(m) // a map of strings always marshals
	return "metadata @> ?::jsonb", []any{string(b)}
}
