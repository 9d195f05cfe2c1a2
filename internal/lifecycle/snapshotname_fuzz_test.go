package lifecycle_test

import (
	"errors"
	"strings"
	"testing"

	"nestbox.dev/internal/errdefs"
	. "nestbox.dev/internal/lifecycle"
)

// FuzzParseSnapshotName: any input is either ErrInvalid or a "name:tag"
// that parses to itself, with no ':' in either part and nothing a path or
// a query could misread.
func FuzzParseSnapshotName(f *testing.F) {
	for _, s := range []string{"env", "env:v1", "a.b_c-d:latest", ":x", "x:", "a:b:c", "../x", "x y", strings.Repeat("a", 64), "A1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		full, err := ParseSnapshotName(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("ParseSnapshotName(%q): %v, want ErrInvalid", s, err)
			}
			return
		}
		name, tag, ok := strings.Cut(full, ":")
		if !ok || name == "" || tag == "" || strings.Contains(tag, ":") || strings.ContainsAny(full, "/?#% \\") {
			t.Fatalf("ParseSnapshotName(%q) = %q: not a clean name:tag", s, full)
		}
		if again, err := ParseSnapshotName(full); err != nil || again != full {
			t.Fatalf("ParseSnapshotName(%q) = %q, %v; want it unchanged", full, again, err)
		}
		if !strings.Contains(s, ":") && full != s+":"+DefaultSnapshotTag {
			t.Fatalf("ParseSnapshotName(%q) = %q, want the default tag", s, full)
		}
	})
}
