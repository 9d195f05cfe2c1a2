package sqlstore

import (
	"errors"
	"testing"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// Layouts of the two stores' cursors, as they stand in their dialects.
const (
	nanoLayout  = "2006-01-02T15:04:05.000000000Z"
	microLayout = "2006-01-02T15:04:05.000000Z"
)

func TestBind(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"SELECT 1", "SELECT 1"},
		{"x = ? AND y IN (?, ?)", "x = $1 AND y IN ($2, $3)"},
		{"a = '?' AND b = ?", "a = '?' AND b = $1"},
		{`"we?rd" = ? AND c = 'it''s ?' AND d = ?`, `"we?rd" = $1 AND c = 'it''s ?' AND d = $2`},
	} {
		if got := (&Dialect{Numbered: true}).bind(tc.in); got != tc.want {
			t.Errorf("bind(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := (&Dialect{}).bind(tc.in); got != tc.in {
			t.Errorf("bind(%q) without numbering = %q, want it unchanged", tc.in, got)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, layout := range []string{nanoLayout, microLayout} {
		d := &Dialect{TimeLayout: layout}
		for _, tc := range []struct {
			at time.Time
			id string
		}{
			{time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC), "abc"},
			{time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600)), "with space and | bar"},
			{time.Time{}, "z"},
		} {
			at, id, err := d.decodeCursor(d.encodeCursor(tc.at, tc.id))
			if err != nil {
				t.Errorf("%s: decodeCursor(encodeCursor(%v, %q)): %v", layout, tc.at, tc.id, err)
				continue
			}
			if !at.Equal(tc.at) || id != tc.id {
				t.Errorf("%s: cursor of (%v, %q) decodes to (%v, %q)", layout, tc.at, tc.id, at, id)
			}
		}
	}
}

// TestCursorFormats pins the cursors that stores have handed out: a
// client may hold one across an upgrade.
func TestCursorFormats(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, tc := range []struct {
		layout, want string
	}{
		// "2025-01-02T03:04:05.000006000Z abc"
		{nanoLayout, "MjAyNS0wMS0wMlQwMzowNDowNS4wMDAwMDYwMDBaIGFiYw"},
		// "2025-01-02T03:04:05.000006Z abc"
		{microLayout, "MjAyNS0wMS0wMlQwMzowNDowNS4wMDAwMDZaIGFiYw"},
	} {
		if got := (&Dialect{TimeLayout: tc.layout}).encodeCursor(at, "abc"); got != tc.want {
			t.Errorf("cursor in %s = %q, want %q", tc.layout, got, tc.want)
		}
	}
}

func TestDecodeCursorRejects(t *testing.T) {
	d := &Dialect{TimeLayout: microLayout}
	for _, cursor := range []string{
		"",
		"not a cursor",
		"!!!!",
		"Zm9v", // "foo": no ID
		d.encodeCursor(time.Now(), "x") + "=",
		// Nanoseconds, which the database would not have kept.
		"MjAyNS0wMS0wMlQwMzowNDowNS4wMDAwMDAwMDZaIGE",
	} {
		if _, _, err := d.decodeCursor(cursor); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("decodeCursor(%q): %v, want ErrInvalid", cursor, err)
		}
	}
}

// FuzzDecodeCursor feeds decodeCursor what clients may send: it must
// answer ErrInvalid or a key that encodes back to the same cursor, in
// either store's layout.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursorIn(nanoLayout, time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), "abc"))
	f.Add(encodeCursorIn(microLayout, time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC), "abc"))
	f.Add("")
	f.Add("not a cursor")
	f.Add("MjAyNS0wMS0wMlQwMzowNDowNS4wMDAwMDAwMDZaIA")
	f.Fuzz(func(t *testing.T, cursor string) {
		for _, layout := range []string{nanoLayout, microLayout} {
			d := &Dialect{TimeLayout: layout}
			at, id, err := d.decodeCursor(cursor)
			if err != nil {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("%s: decodeCursor(%q): %v, want ErrInvalid", layout, cursor, err)
				}
				continue
			}
			if again := d.encodeCursor(at, id); again != cursor {
				t.Fatalf("%s: decodeCursor(%q) = (%v, %q), which encodes to %q", layout, cursor, at, id, again)
			}
		}
	})
}

func encodeCursorIn(layout string, at time.Time, id string) string {
	return (&Dialect{TimeLayout: layout}).encodeCursor(at, id)
}

// TestTimeText checks the text timestamps of a TimeText dialect: UTC,
// fixed width, read back exactly.
func TestTimeText(t *testing.T) {
	d := &Dialect{TimeLayout: nanoLayout, TimeText: true}
	in := time.Date(2025, 1, 2, 5, 4, 5, 7, time.FixedZone("UTC+2", 7200))
	v := d.time(in)
	if v != "2025-01-02T03:04:05.000000007Z" {
		t.Fatalf("time(%v) = %v", in, v)
	}
	got, err := d.parseTime(v)
	if err != nil || !got.Equal(in) || got.Location() != time.UTC {
		t.Errorf("parseTime(%v) = %v, %v; want %v in UTC", v, got, err, in)
	}
	if _, err := d.parseTime(int64(5)); err == nil {
		t.Error("parseTime(int64) succeeded, want an error")
	}
	if _, err := (&Dialect{TimeLayout: microLayout}).parseTime("2025-01-02T03:04:05.000000Z"); err == nil {
		t.Error("parseTime(text) of a time.Time dialect succeeded, want an error")
	}
}

// TestNoMetadataFilter checks that a dialect without a metadata filter
// refuses a list that asks for one rather than ignoring it.
func TestNoMetadataFilter(t *testing.T) {
	s := New(nil, nil, Dialect{TimeLayout: microLayout})
	if _, _, err := s.capsuleFilter(store.CapsuleFilter{Metadata: map[string]string{"k": "v"}}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("capsuleFilter with metadata and no MetadataMatch: %v, want ErrInvalid", err)
	}
	if err := s.d.Kind(errors.ErrUnsupported); err != errors.ErrUnsupported {
		t.Errorf("default Kind changed the error to %v", err)
	}
}
