package apikey

import (
	"errors"
	"strings"
	"testing"

	"nestbox.dev/internal/errdefs"
)

func TestNewParseRoundTrip(t *testing.T) {
	key, hash := New()
	if !strings.HasPrefix(key, Prefix) || len(key) != len(Prefix)+hexLen {
		t.Fatalf("New: key %q has the wrong shape", key)
	}
	for _, presented := range []string{key, E2BForm(key)} {
		got, err := Parse(presented)
		if err != nil {
			t.Fatalf("Parse(%q): %v", presented, err)
		}
		if got != hash {
			t.Fatalf("Parse(%q): hash %q, want %q", presented, got, hash)
		}
	}
	other, otherHash := New()
	if other == key || otherHash == hash {
		t.Fatal("two New calls gave the same key")
	}
}

func TestParseRejects(t *testing.T) {
	valid := strings.Repeat("ab", hexLen/2)
	for _, key := range []string{
		"",
		"nbx_",
		"nbx_" + valid[:39],
		"nbx_" + valid + "0",
		"nbx_" + strings.ToUpper(valid),
		"abc_" + valid,
		"nbx_" + valid[:39] + "g",
		" nbx_" + valid,
	} {
		if _, err := Parse(key); !errors.Is(err, errdefs.ErrUnauthenticated) {
			t.Errorf("Parse(%q): got %v, want an unauthenticated error", key, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	key, _ := New()
	f.Add(key)
	f.Add(E2BForm(key))
	f.Add("nbx_zz")
	f.Fuzz(func(t *testing.T, s string) {
		hash, err := Parse(s)
		if err == nil && len(hash) != 64 {
			t.Fatalf("Parse(%q) accepted with a hash of length %d", s, len(hash))
		}
	})
}
