package sqlite

import (
	"errors"
	"testing"
	"time"

	"nestbox.dev/internal/errdefs"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		at time.Time
		id string
	}{
		{time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), "abc"},
		{time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600)), "with space and | bar"},
		{time.Time{}, "z"},
	} {
		createdAt, id, err := decodeCursor(encodeCursor(tc.at, tc.id))
		if err != nil {
			t.Errorf("decodeCursor(encodeCursor(%v, %q)): %v", tc.at, tc.id, err)
			continue
		}
		if createdAt != formatTime(tc.at) || id != tc.id {
			t.Errorf("cursor of (%v, %q) decodes to (%q, %q)", tc.at, tc.id, createdAt, id)
		}
	}
}

// FuzzDecodeCursor feeds decodeCursor what clients may send: it must
// answer ErrInvalid or a key that encodes back to the same cursor.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), "abc"))
	f.Add("")
	f.Add("not a cursor")
	f.Add("MjAyNS0wMS0wMlQwMzowNDowNS4wMDAwMDAwMDZaIA")
	f.Fuzz(func(t *testing.T, cursor string) {
		createdAt, id, err := decodeCursor(cursor)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("decodeCursor(%q): %v, want ErrInvalid", cursor, err)
			}
			return
		}
		at, perr := parseTime(createdAt)
		if perr != nil {
			t.Fatalf("decodeCursor(%q) accepted timestamp %q: %v", cursor, createdAt, perr)
		}
		if again := encodeCursor(at, id); again != cursor {
			t.Fatalf("decodeCursor(%q) = (%q, %q), which encodes to %q", cursor, createdAt, id, again)
		}
	})
}
