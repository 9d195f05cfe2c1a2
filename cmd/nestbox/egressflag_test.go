package main

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"

	"nestbox.dev/internal/egress"
)

// TestEgressDenyFlag checks --egress-deny and NESTBOX_EGRESS_DENY: the
// default is the built-in list, a list replaces it, "" denies nothing
// beyond what the host always denies, and a bad entry is refused.
func TestEgressDenyFlag(t *testing.T) {
	t.Setenv("NESTBOX_RUNSC", "/bin/true")
	t.Setenv("NESTBOX_EGRESS_DENY", "")
	t.Setenv("NESTBOX_DATA_DIR", "/srv/nestbox")
	for _, tc := range []struct {
		args []string
		want []netip.Prefix
	}{
		{[]string{"--egress-deny", "default"}, egress.DefaultDeny()},
		{[]string{"--egress-deny", "169.254.169.254, 10.0.0.0/8"}, []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32"), netip.MustParsePrefix("10.0.0.0/8")}},
		{[]string{"--egress-deny", ""}, []netip.Prefix{}},
	} {
		cfg, _, _, _, err := parseAgentFlags(tc.args, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if cfg.EgressDeny == nil || !slices.Equal(cfg.EgressDeny, tc.want) {
			t.Errorf("%v: got %v, want %v", tc.args, cfg.EgressDeny, tc.want)
		}
	}
	t.Setenv("NESTBOX_EGRESS_DENY", "192.168.0.0/16")
	if cfg, _, _, _, err := parseAgentFlags(nil, &bytes.Buffer{}); err != nil || !slices.Equal(cfg.EgressDeny, []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}) {
		t.Errorf("from the environment: %v, %v", cfg.EgressDeny, err)
	}
	for _, bad := range []string{"fd00::/8", "10.0.0.0/33", "metadata"} {
		if _, _, _, _, err := parseAgentFlags([]string{"--egress-deny", bad}, &bytes.Buffer{}); err == nil {
			t.Errorf("--egress-deny %q accepted", bad)
		}
	}
}
