package postgres

import (
	"encoding/json"
)

// Timestamps are passed to pgx as time.Time and *time.Time (nil is NULL)
// and come back in UTC (see utcTimes), truncated to PostgreSQL's
// microseconds.

// formatMap is a map as the JSON object a JSONB column holds; nil is {},
// which the column's CHECK wants rather than null. The text is sent as is:
// pgx passes a string to a JSONB parameter without encoding it again.
func formatMap(m map[string]string) string {
	if m == nil {
		return "{}"
	}
	b, _ := json.Marshal(m) // a map of strings always marshals
	return string(b)
}

// formatList is a list as a JSON array; nil is [].
func formatList(l []string) string {
	if l == nil {
		return "[]"
	}
	b, _ := json.Marshal(l) // a slice of strings always marshals
	return string(b)
}

// emptyToNil makes an empty map or list read back as nil, so that a
// capsule created without metadata reads back as it was written.
func emptyToNil(m *map[string]string, ls ...*[]string) {
	if len(*m) == 0 {
		*m = nil
	}
	for _, l := range ls {
		if len(*l) == 0 {
			*l = nil
		}
	}
}

// nullString is NULL for "", for optional references such as
// api_keys.created_by.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
