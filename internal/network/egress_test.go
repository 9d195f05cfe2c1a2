package network

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"nestbox.dev/internal/errdefs"
)

func TestEgressPolicy(t *testing.T) {
	forTopologies(t, func(t *testing.T, topo func(*Config)) {
		m := newTestManager(t, topo)
		startExternal(t)
		ext := "http://" + extAddr + ":8080/"
		extPrefix := netip.MustParsePrefix("203.0.113.0/24")
		for _, tc := range []struct {
			name string
			opts Options
			want bool
		}{
			{"internet", Options{Internet: true}, true},
			{"offline", Options{Internet: false}, false},
			{"denied", Options{Internet: true, DenyOut: []netip.Prefix{extPrefix}}, false},
			{"allowed while offline", Options{AllowOut: []netip.Prefix{netip.MustParsePrefix(extAddr + "/32")}}, true},
			{"allow beats deny", Options{Internet: true, AllowOut: []netip.Prefix{netip.MustParsePrefix(extAddr + "/31")}, DenyOut: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				sb := setup(t, m, "egress-"+strings.ReplaceAll(tc.name, " ", "-"), tc.opts)
				if got := reach(sb, ext); got != tc.want {
					t.Fatalf("reach external host with %+v: got %v, want %v", tc.opts, got, tc.want)
				}
			})
		}
	})
}

// TestOperatorDenyList checks that the default deny list keeps a sandbox
// with internet on from the metadata address and every private range, and
// that no allow list opens them. TestDenyListIsWhatBlocks is its control.
func TestOperatorDenyList(t *testing.T) {
	forTopologies(t, func(t *testing.T, topo func(*Config)) {
		m := newTestManager(t, topo)
		startExternal(t)
		sb := setup(t, m, "deny", Options{Internet: true})
		if !reach(sb, "http://"+extAddr+":8080/") {
			t.Fatal("control: the fake public host is not reachable with internet on")
		}
		for _, d := range fakeDenied {
			if reach(sb, "http://"+d.addr+":8080/") {
				t.Errorf("reached %s (%s) with internet on", d.addr, d.name)
			}
		}
		// Allow lists naming them are refused.
		for _, d := range fakeDenied {
			allow := []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(d.addr), 32)}
			if _, err := m.Setup(context.Background(), "deny-allow", Options{Internet: true, AllowOut: allow}); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("allow_out %s (%s): got %v, want an invalid-argument error", d.addr, d.name, err)
			}
		}
		if len(m.used) != 1 {
			t.Errorf("refused setups hold slots: %v", m.used)
		}
	})
}

// TestDenyBeforeAllow checks the order of the rules themselves, beneath
// Setup's refusal: a sandbox chain written with an allow list naming the
// denied fake hosts (as a Setup without the check would write it) still
// does not reach them, while its allow list works for the public one.
func TestDenyBeforeAllow(t *testing.T) {
	forTopologies(t, func(t *testing.T, topo func(*Config)) {
		m := newTestManager(t, topo)
		startExternal(t)
		sb := setup(t, m, "order", Options{})
		opts := Options{AllowOut: []netip.Prefix{netip.MustParsePrefix(extAddr + "/32")}}
		for _, d := range fakeDenied {
			opts.AllowOut = append(opts.AllowOut, netip.PrefixFrom(netip.MustParseAddr(d.addr), 32))
		}
		if err := m.applyRules(sb, opts); err != nil {
			t.Fatal(err)
		}
		if !reach(sb, "http://"+extAddr+":8080/") {
			t.Fatal("control: the allowed fake public host is not reachable")
		}
		for _, d := range fakeDenied {
			if reach(sb, "http://"+d.addr+":8080/") {
				t.Errorf("an allow rule opened %s (%s), which the deny list blocks", d.addr, d.name)
			}
		}
	})
}

// TestDenyListIsWhatBlocks is the control of TestOperatorDenyList: with an
// empty operator list the same fake hosts answer, so the blocking there
// is the deny list's doing, not a routing accident.
func TestDenyListIsWhatBlocks(t *testing.T) {
	forTopologies(t, func(t *testing.T, topo func(*Config)) {
		m := newTestManager(t, topo, func(c *Config) { c.EgressDeny = []netip.Prefix{} })
		startExternal(t)
		sb := setup(t, m, "nodeny", Options{Internet: true})
		for _, d := range fakeDenied {
			if !reach(sb, "http://"+d.addr+":8080/") {
				t.Errorf("control: %s (%s) not reachable without a deny list", d.addr, d.name)
			}
		}
	})
}

// TestHostAddressesAlwaysDenied checks that the host's own addresses and
// the pool are denied even with an empty operator list, and allow lists
// naming them are refused.
func TestHostAddressesAlwaysDenied(t *testing.T) {
	forTopologies(t, func(t *testing.T, topo func(*Config)) {
		m := newTestManager(t, topo, func(c *Config) { c.EgressDeny = []netip.Prefix{} })
		host, err := hostAddrs()
		if err != nil {
			t.Fatal(err)
		}
		other := setup(t, m, "host-other", Options{})
		addrs := append(host, other.HostIP, other.Addr())
		for _, a := range addrs {
			allow := []netip.Prefix{netip.PrefixFrom(a, 32)}
			sb, err := m.Setup(context.Background(), "host-allow", Options{AllowOut: allow})
			if err == nil {
				m.Teardown(context.Background(), sb) // a test failing must not leave a network to the next
			}
			if !errors.Is(err, errdefs.ErrInvalid) && stillHostAddr(a, other) {
				t.Errorf("allow_out %s (an address of the host or the pool): got %v, want invalid", a, err)
			}
		}
		deny := m.EgressDeny()
		for _, a := range addrs {
			if !slices.ContainsFunc(deny, func(p netip.Prefix) bool { return p.Contains(a) }) && stillHostAddr(a, other) {
				t.Errorf("%s is not in the deny set %v", a, deny)
			}
		}
	})
}

// stillHostAddr reports whether a is an address of the host now, or one
// of sb's. Other test packages, run at the same time, add and remove
// addresses of their sandboxes' host ends: one read at the start of a test
// may be gone by the time it is checked, and is then rightly not denied.
func stillHostAddr(a netip.Addr, sb Sandbox) bool {
	if a == sb.HostIP || a == sb.Addr() {
		return true
	}
	now, err := hostAddrs()
	return err != nil || slices.Contains(now, a)
}

// TestSetEgress changes a running sandbox's egress rules (a warm pool's
// sandbox taking a create's): internet on, then off, then one allowed
// host; an allow rule that overlaps the deny list is refused and leaves
// the rules as they were.
func TestSetEgress(t *testing.T) {
	forTopologies(t, func(t *testing.T, topo func(*Config)) {
		m := newTestManager(t, topo)
		startExternal(t)
		ctx := context.Background()
		sb := setup(t, m, "setegress", Options{Internet: true})
		url := "http://" + extAddr + ":8080/"
		if !reach(sb, url) {
			t.Fatal("control: internet on, the fake public host is not reachable")
		}
		if err := m.SetEgress(ctx, sb, Options{}); err != nil {
			t.Fatal(err)
		}
		if reach(sb, url) {
			t.Error("internet off by SetEgress: the fake public host is still reachable")
		}
		allow := Options{AllowOut: []netip.Prefix{netip.MustParsePrefix(extAddr + "/32")}}
		if err := m.SetEgress(ctx, sb, allow); err != nil {
			t.Fatal(err)
		}
		if !reach(sb, url) {
			t.Error("allow_out by SetEgress: the allowed host is not reachable")
		}
		bad := Options{AllowOut: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(fakeDenied[0].addr), 32)}}
		if err := m.SetEgress(ctx, sb, bad); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("SetEgress with allow_out %s (denied): %v, want invalid", fakeDenied[0].addr, err)
		}
		if !reach(sb, url) {
			t.Error("a refused SetEgress changed the rules")
		}
	})
}
