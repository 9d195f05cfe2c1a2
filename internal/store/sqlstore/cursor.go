package sqlstore

import (
	"encoding/base64"
	"strings"
	"time"

	"nestbox.dev/internal/errdefs"
)

// A cursor is the (created_at, id) of the last capsule of a page, base64url
// encoded so that clients treat it as opaque. The next page starts strictly
// after that key, not at an offset: capsules created between two pages
// are newer than the cursor and never shift or repeat what follows it.
// created_at is written in the dialect's TimeLayout, so cursors that a
// store handed out stay valid across this code's versions: SQLite's carry
// nanoseconds, PostgreSQL's microseconds.

// encodeCursor is the cursor after a capsule created at createdAt with id.
func (d *Dialect) encodeCursor(createdAt time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(createdAt.UTC().Format(d.TimeLayout) + " " + id))
}

// decodeCursor returns the created_at and the ID of a cursor. Anything
// that encodeCursor did not make is ErrInvalid: the cursor comes from a
// client.
func (d *Dialect) decodeCursor(cursor string) (createdAt time.Time, id string, err error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
	if err != nil {
		return time.Time{}, "", errdefs.Invalid("bad cursor %q", cursor)
	}
	at, id, ok := strings.Cut(string(b), " ")
	if !ok || id == "" {
		return time.Time{}, "", errdefs.Invalid("bad cursor %q", cursor)
	}
	// Only the canonical form: one cursor per key, and for text
	// timestamps the only form that compares correctly.
	t, err := time.Parse(d.TimeLayout, at)
	if err != nil || t.UTC().Format(d.TimeLayout) != at {
		return time.Time{}, "", errdefs.Invalid("bad cursor %q", cursor)
	}
	return t, id, nil
}
