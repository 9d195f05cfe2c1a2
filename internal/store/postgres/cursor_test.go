package postgres

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
		{time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC), "abc"},
		{time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600)), "with space and | bar"},
		{time.Time{}, "z"},
	} {
		at, id, err := decodeCursor(encodeCursor(tc.at, tc.id))
		if err != nil {
			t.Errorf("decodeCursor(encodeCursor(%v, %q)): %v", tc.at, tc.id, err)
			continue
		}
		if !at.Equal(tc.at) || id != tc.id {
			t.Errorf("cursor of (%v, %q) decodes to (%v, %q)", tc.at, tc.id, at, id)
		}
	}
}

func TestDecodeCursorRejects(t *testing.T) {
	for _, cursor := range []string{
		"",
		"not a cursor",
		"!!!!",
		"Zm9v", // "foo": no ID
		encodeCursor(time.Now(), "x") + "=",
		// Nanoseconds, which the database would not have kept.
		"MjAyNS0wMS0wMlQwMzowNDowNS4wMDAwMDAwMDZaIGE",
	} {
		if _, _, err := decodeCursor(cursor); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("decodeCursor(%q): %v, want ErrInvalid", cursor, err)
		}
	}
}

// FuzzDecodeCursor feeds decodeCursor what clients may send: it must
// answer ErrInvalid or a key that encodes back to the same cursor.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC), "abc"))
	f.Add("")
	f.Add("not a cursor")
	f.Add("MjAyNS0wMS0wMlQwMzowNDowNS4wMDAwMDBaIGE")
	f.Fuzz(func(t *testing.T, cursor string) {
		at, id, err := decodeCursor(cursor)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("decodeCursor(%q): %v, want ErrInvalid", cursor, err)
			}
			return
		}
		if again := encodeCursor(at, id); again != cursor {
			t.Fatalf("decodeCursor(%q) = (%v, %q), which encodes to %q", cursor, at, id, again)
		}
	})
}
