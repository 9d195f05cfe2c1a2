package postgres

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

// cursorLayout writes created_at in UTC at microseconds, PostgreSQL's
// precision, so that the cursor holds exactly the value in the row.
const cursorLayout = "2006-01-02T15:04:05.000000Z"

// encodeCursor is the cursor after a capsule created at createdAt with id.
func encodeCursor(createdAt time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(createdAt.UTC().Format(cursorLayout) + " " + id))
}

// decodeCursor returns the created_at and the ID of a cursor. Anything
// that encodeCursor did not make is ErrInvalid: the cursor comes from a
// client.
func decodeCursor(cursor string) (createdAt time.Time, id string, err error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
	if err != nil {
		return time.Time{}, "", errdefs.Invalid("bad cursor %q", cursor)
	}
	at, id, ok := strings.Cut(string(b), " ")
	if !ok || id == "" {
		return time.Time{}, "", errdefs.Invalid("bad cursor %q", cursor)
	}
	// Only the canonical form: one cursor per key.
	t, err := time.Parse(cursorLayout, at)
	if err != nil || t.Format(cursorLayout) != at {
		return time.Time{}, "", errdefs.Invalid("bad cursor %q", cursor)
	}
	return t, id, nil
}
