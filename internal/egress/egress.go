// Package egress is the operator's egress policy that no tenant option can
// open: the destinations a sandbox may never reach (cloud metadata, private
// and shared ranges, loopback, multicast, the host's own addresses), and
// the check that rejects a tenant's allow list naming any of them.
//
// The host agent's network rules put this deny list before every
// per-sandbox allow rule; the control plane uses Check to answer 400 at
// create instead of accepting an entry the host would ignore. Imported by
// the network package, the lifecycle service and the commands' flags.
package egress

import (
	"net/netip"
	"strings"

	"nestbox.dev/internal/errdefs"
)

// defaultDeny is the deny list used when the operator configures none.
// Each entry says why it is there.
var defaultDeny = []string{
	"0.0.0.0/8",      // "this network"; 0.0.0.0 reaches the host's listeners
	"10.0.0.0/8",     // RFC 1918: the operator's private networks
	"100.64.0.0/10",  // RFC 6598 CGNAT, also used by cloud internal services
	"127.0.0.0/8",    // loopback (only reachable by misrouting, but never allowed)
	"169.254.0.0/16", // link-local: cloud metadata (169.254.169.254) lives here
	"172.16.0.0/12",  // RFC 1918
	"192.0.0.0/24",   // IETF protocol assignments
	"192.168.0.0/16", // RFC 1918
	"198.18.0.0/15",  // benchmarking networks, used inside data centres
	"224.0.0.0/4",    // multicast
	"240.0.0.0/4",    // reserved, and the limited broadcast address
}

// DefaultDeny returns a fresh copy of the default deny list.
func DefaultDeny() []netip.Prefix {
	out := make([]netip.Prefix, len(defaultDeny))
	for i, s := range defaultDeny {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// ParsePrefix accepts an IPv4 address ("1.2.3.4", a /32) or prefix
// ("1.2.3.0/24") and returns it masked.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			return netip.Prefix{}, errdefs.Invalid("%q is not an IPv4 prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, errdefs.Invalid("%q is not an IPv4 address", s)
	}
	return netip.PrefixFrom(a, 32), nil
}

// ParseList parses a comma-separated list of prefixes (a flag's value).
// "" gives an empty, non-nil list (deny nothing), so that it is not
// mistaken for an unset list (nil: the default); "default" gives
// DefaultDeny.
func ParseList(s string) ([]netip.Prefix, error) {
	s = strings.TrimSpace(s)
	out := []netip.Prefix{}
	if s == "" {
		return out, nil
	}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "default" {
			out = append(out, DefaultDeny()...)
			continue
		}
		p, err := ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Check rejects every entry of a tenant's allow list that overlaps the
// deny list: the host would drop that traffic anyway, and accepting the
// entry silently would tell the tenant otherwise. The error is
// errdefs.Invalid and names the entry and the denied range.
func Check(allow []netip.Prefix, deny []netip.Prefix) error {
	for _, a := range allow {
		for _, d := range deny {
			if a.Overlaps(d) {
				return errdefs.Invalid("allow_out %s overlaps %s, which the host's egress deny list blocks", a, d)
			}
		}
	}
	return nil
}

// String formats a list as ParseList reads it.
func String(list []netip.Prefix) string {
	parts := make([]string, len(list))
	for i, p := range list {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}
