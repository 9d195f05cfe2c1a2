package capsulespec

import (
	"strings"
	"testing"
)

func TestNewIDIsValidAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !ValidID(id) || seen[id] {
			t.Fatalf("NewID gave %q (valid %v, seen before %v)", id, ValidID(id), seen[id])
		}
		seen[id] = true
	}
}

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{strings.Repeat("a", IDLength), true},
		{"abcdefghij0123456789", true},
		{strings.Repeat("a", IDLength-1), false},
		{strings.Repeat("a", IDLength+1), false},
		{"ABCDEFGHIJ0123456789", false},
		{"abcdefghij012345678-", false},
		{"abcdefghij01234567/.", false},
		{"", false},
	} {
		if got := ValidID(tc.id); got != tc.want {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}
