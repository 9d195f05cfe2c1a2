package egress

import (
	"errors"
	"net/netip"
	"testing"

	"nestbox.dev/internal/errdefs"
)

func TestCheck(t *testing.T) {
	deny := DefaultDeny()
	for _, tc := range []struct {
		allow string
		ok    bool
	}{
		{"169.254.169.254", false},
		{"10.1.2.3", false},
		{"172.20.0.0/16", false},
		{"192.168.1.0/24", false},
		{"100.100.100.200", false},
		{"0.0.0.0/0", false}, // contains every denied range
		{"8.0.0.0/7", true},
		{"1.1.1.1", true},
		{"203.0.113.0/24", true},
	} {
		p, err := ParsePrefix(tc.allow)
		if err != nil {
			t.Fatalf("parse %q: %v", tc.allow, err)
		}
		err = Check([]netip.Prefix{p}, deny)
		if tc.ok && err != nil {
			t.Errorf("Check(%q) = %v, want nil", tc.allow, err)
		}
		if !tc.ok && !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Check(%q) = %v, want an invalid error", tc.allow, err)
		}
	}
}

func TestParseList(t *testing.T) {
	got, err := ParseList("default, 203.0.113.7")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(defaultDeny)+1 || got[len(got)-1] != netip.MustParsePrefix("203.0.113.7/32") {
		t.Fatalf("ParseList = %v", got)
	}
	if l, err := ParseList(""); err != nil || l == nil || len(l) != 0 {
		t.Fatalf("ParseList(\"\") = %v, %v", l, err)
	}
	for _, bad := range []string{"::1", "10.0.0.0/33", "x", "1.2.3.4,"} {
		if _, err := ParseList(bad); err == nil {
			t.Errorf("ParseList(%q) accepted", bad)
		}
	}
	if s := String([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}); s != "10.0.0.0/8" {
		t.Errorf("String = %q", s)
	}
}
