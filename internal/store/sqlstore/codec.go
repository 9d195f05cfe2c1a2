package sqlstore

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Timestamps: where the dialect keeps them as text (TimeText), every one
// is written in TimeLayout, UTC and fixed width, so that text order is
// time order for ORDER BY and the cursor comparison; the driver's own time
// conversion is not used, since its format depends on DSN options and
// column declarations. Elsewhere they go to the driver as time.Time and
// come back as time.Time, cut to the database's precision, and are read
// in UTC.

// time is t as a parameter.
func (d *Dialect) time(t time.Time) any {
	if d.TimeText {
		return t.UTC().Format(d.TimeLayout)
	}
	return t
}

// timePtr is NULL for nil.
func (d *Dialect) timePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return d.time(*t)
}

// parseTime reads a timestamp as the driver hands it over.
func (d *Dialect) parseTime(v any) (time.Time, error) {
	if t, ok := v.(time.Time); ok && !d.TimeText {
		return t.UTC(), nil
	}
	s, ok := text(v)
	if !ok || !d.TimeText {
		return time.Time{}, fmt.Errorf("timestamp column holds %T", v)
	}
	t, err := time.Parse(d.TimeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q in database: %w", s, err)
	}
	return t, nil
}

// timeCol scans a NOT NULL timestamp column.
func (d *Dialect) timeCol(dst *time.Time) sql.Scanner { return timeCol{dst, d} }

// nullTimeCol scans a nullable timestamp column; NULL is nil.
func (d *Dialect) nullTimeCol(dst **time.Time) sql.Scanner { return nullTimeCol{dst, d} }

type timeCol struct {
	dst *time.Time
	d   *Dialect
}

func (c timeCol) Scan(v any) error {
	t, err := c.d.parseTime(v)
	*c.dst = t
	return err
}

type nullTimeCol struct {
	dst **time.Time
	d   *Dialect
}

func (c nullTimeCol) Scan(v any) error {
	if v == nil {
		*c.dst = nil
		return nil
	}
	t, err := c.d.parseTime(v)
	if err != nil {
		return err
	}
	*c.dst = &t
	return nil
}

// formatMap stores a map as a JSON object; nil is {}, which the columns'
// CHECKs want rather than null. PostgreSQL's driver passes the text to a
// JSONB parameter as it is.
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
	if isEmptyJSON(v) {
		*c.dst = nil
		return nil
	}
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
	if isEmptyJSON(v) {
		*c.dst = nil
		return nil
	}
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

// intCol scans an integer column into an int.
type intCol struct{ dst *int }

func (c intCol) Scan(v any) error {
	switch v := v.(type) {
	case int64:
		*c.dst = int(v)
	case int32:
		*c.dst = int(v)
	default:
		return fmt.Errorf("integer column holds %T", v)
	}
	return nil
}

// isEmptyJSON reports whether a JSON column holds an empty object or array
// (or null), as most capsules' lists and maps are: those read as nil
// without the decoder, which a list of capsules would run several times a
// row.
func isEmptyJSON(v any) bool {
	switch v := v.(type) {
	case string:
		return v == "{}" || v == "[]" || v == "null"
	case []byte:
		return string(v) == "{}" || string(v) == "[]" || string(v) == "null"
	}
	return false
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

// text is the value of a text or JSON column, which drivers hand over as
// a string or as bytes.
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

// intPtr and nullInt carry an optional number between *int and a nullable
// column.
func intPtr(v sql.NullInt64) *int {
	if !v.Valid {
		return nil
	}
	n := int(v.Int64)
	return &n
}

func nullInt(p *int) sql.NullInt64 {
	if p == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: int64(*p), Valid: true}
}
