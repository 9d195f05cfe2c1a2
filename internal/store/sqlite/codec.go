package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// timeLayout is how every timestamp is stored: UTC, nanoseconds, fixed
// width. Fixed width makes text order equal time order, so ORDER BY and the
// (created_at, id) cursor comparison work on the text; nanoseconds make a
// time.Time round-trip exactly. The driver's own time conversion is not
// used: its format depends on DSN options and column declarations.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// formatTimePtr is NULL for nil.
func formatTimePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return formatTime(*t)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q in database: %w", s, err)
	}
	return t, nil
}

// timeCol scans a NOT NULL timestamp column.
type timeCol struct{ dst *time.Time }

func (c timeCol) Scan(v any) error {
	s, ok := text(v)
	if !ok {
		return fmt.Errorf("timestamp column holds %T, want text", v)
	}
	t, err := parseTime(s)
	*c.dst = t
	return err
}

// nullTimeCol scans a nullable timestamp column; NULL is nil.
type nullTimeCol struct{ dst **time.Time }

func (c nullTimeCol) Scan(v any) error {
	if v == nil {
		*c.dst = nil
		return nil
	}
	var t time.Time
	if err := (timeCol{&t}).Scan(v); err != nil {
		return err
	}
	*c.dst = &t
	return nil
}

// formatMap stores a map as a JSON object; nil is {}.
func formatMap(m map[string]string) string {
	if m == nil {
		return "{}"
	}
	b, _ := json.Marshal(m) // a map of strings always marshals
	return string(b)
}

// formatList stores a list as a JSON array; nil is [].
func formatList(l []string) string {
	if l == nil {
		return "[]"
	}
	b, _ := json.Marshal(l) // a slice of strings always marshals
	return string(b)
}

// mapCol scans a JSON object column. An empty object reads as nil, so that
// a capsule created without metadata reads back as it was written.
type mapCol struct{ dst *map[string]string }

func (c mapCol) Scan(v any) error {
	var m map[string]string
	if err := unmarshalCol(v, &m); err != nil {
		return err
	}
	if len(m) == 0 {
		m = nil
	}
	*c.dst = m
	return nil
}

// listCol scans a JSON array column; an empty array reads as nil.
type listCol struct{ dst *[]string }

func (c listCol) Scan(v any) error {
	var l []string
	if err := unmarshalCol(v, &l); err != nil {
		return err
	}
	if len(l) == 0 {
		l = nil
	}
	*c.dst = l
	return nil
}

func unmarshalCol(v, dst any) error {
	s, ok := text(v)
	if !ok {
		return fmt.Errorf("JSON column holds %T, want text", v)
	}
	if err := json.Unmarshal([]byte(s), dst); err != nil {
		return fmt.Errorf("bad JSON %q in database: %w", s, err)
	}
	return nil
}

// text is the value of a TEXT column, which the driver hands over as a
// string (or bytes, were a BLOB ever stored in one).
func text(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	}
	return "", false
}

// nullString is NULL for "", for optional references such as
// api_keys.created_by.
func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// boolInt stores a bool in a STRICT INTEGER column.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dst ...any) error }
