package sqlite

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

// encodeCursor is the cursor after a capsule created at createdAt with id.
func encodeCursor(createdAt time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(formatTime(createdAt) + " " + id))
}

// decodeCursor returns the created_at column text and the ID of a cursor.
// Anything that encodeCursor did not make is ErrInvalid: the cursor comes
// from a client.
func decodeCursor(cursor string) (createdAt, id string, err error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
	if err != nil {
		return "", "", errdefs.Invalid("bad cursor %q", cursor)
	}
	createdAt, id, ok := strings.Cut(string(b), " ")
	if !ok || id == "" {
		return "", "", errdefs.Invalid("bad cursor %q", cursor)
	}
	// Only the canonical form compares correctly as text.
	if t, err := time.Parse(timeLayout, createdAt); err != nil || formatTime(t) != createdAt {
		return "", "", errdefs.Invalid("bad cursor %q", cursor)
	}
	return createdAt, id, nil
}
