package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"nestbox.dev/internal/errdefs"
)

// privateRanges are denied to sandboxes unless explicitly allowed: the
// host's LAN, cloud metadata services and carrier-grade NAT space.
var privateRanges = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4"}

func (m *Manager) names(id string, slot int) (netns, hostIf, chain string) {
	return m.cfg.Prefix + "-" + id, m.cfg.Prefix + "h" + strconv.Itoa(slot), "sb" + strconv.Itoa(slot)
}

// Setup builds the network of sandbox id. On error everything it made is
// removed again.
func (m *Manager) Setup(ctx context.Context, id string, opts Options) (sb Sandbox, err error) {
	if id == "" || strings.ContainsAny(id, "/ \x00") || len(id) > 200 {
		return Sandbox{}, errdefs.Invalid("invalid sandbox id %q", id)
	}
	for _, p := range append(append([]netip.Prefix{}, opts.AllowOut...), opts.DenyOut...) {
		if !p.IsValid() || !p.Addr().Is4() {
			return Sandbox{}, errdefs.Invalid("egress rule %s: only IPv4 prefixes are supported", p)
		}
	}
	slot, err := m.allocate(id)
	if err != nil {
		return Sandbox{}, err
	}
	netns, hostIf, _ := m.names(id, slot)
	host, guest := m.slotAddrs(slot)
	sb = Sandbox{ID: id, Slot: slot, NetNS: filepath.Join(netnsDir, netns), HostIf: hostIf, HostIP: host, GuestIP: guest, Bits: 30}

	// A cleanup stack: each step that makes something pushes its undo,
	// and a failure unwinds exactly what this call made.
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			m.release(slot, id)
		}
	}()
	bg := context.WithoutCancel(ctx)
	steps := []struct {
		args []string
		undo func()
	}{
		{[]string{"netns", "add", netns}, func() { run(bg, "ip", "netns", "del", netns) }},
		{[]string{"-n", netns, "link", "set", "lo", "up"}, nil},
		// The guest end is created inside the namespace as eth0, so
		// names never collide between sandboxes.
		{[]string{"link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", netns}, func() { run(bg, "ip", "link", "del", hostIf) }},
		{[]string{"addr", "add", netip.PrefixFrom(host, 30).String(), "dev", hostIf}, nil},
		{[]string{"link", "set", hostIf, "up"}, nil},
		{[]string{"-n", netns, "addr", "add", sb.GuestPrefix().String(), "dev", "eth0"}, nil},
		{[]string{"-n", netns, "link", "set", "eth0", "up"}, nil},
		{[]string{"-n", netns, "route", "add", "default", "via", host.String()}, nil},
	}
	for _, s := range steps {
		if err := run(ctx, "ip", s.args...); err != nil {
			return sb, fmt.Errorf("set up network of %s: %w", id, err)
		}
		if s.undo != nil {
			undo = append(undo, s.undo)
		}
	}
	undo = append(undo, func() { m.removeRules(bg, sb) })
	if err := m.applyRules(ctx, sb, opts); err != nil {
		return sb, fmt.Errorf("set up network of %s: %w", id, err)
	}
	undo = append(undo, func() { run(bg, "ip", "link", "del", m.ifbName(slot)) })
	if err := m.limitRate(ctx, hostIf, m.ifbName(slot)); err != nil {
		return sb, fmt.Errorf("set up network of %s: %w", id, err)
	}
	return sb, nil
}

// applyRules installs the sandbox's egress chain and hooks it to its link.
func (m *Manager) applyRules(ctx context.Context, sb Sandbox, opts Options) error {
	_, hostIf, chain := m.names(sb.ID, sb.Slot)
	t := m.tableName()
	var b strings.Builder
	fmt.Fprintf(&b, "add chain inet %s %s\nflush chain inet %s %s\n", t, chain, t, chain)
	rule := func(format string, args ...any) {
		fmt.Fprintf(&b, "add rule inet %s %s %s\n", t, chain, fmt.Sprintf(format, args...))
	}
	// Traffic to the sandbox's own host address is input, not forward,
	// and the input chain drops it; nothing to do for it here.
	for _, p := range opts.AllowOut {
		rule("ip daddr %s accept", p.Masked())
	}
	for _, p := range opts.DenyOut {
		rule("ip daddr %s drop", p.Masked())
	}
	if !opts.Internet {
		rule("drop")
	} else {
		rule("ip daddr { %s } drop", strings.Join(privateRanges, ", "))
		rule("accept")
	}
	fmt.Fprintf(&b, "add element inet %s egress { \"%s\" : jump %s }\n", t, hostIf, chain)
	return nft(ctx, b.String())
}

func (m *Manager) ifbName(slot int) string { return m.cfg.Prefix + "i" + strconv.Itoa(slot) }

// limitRate shapes what the sandbox sends. Its egress is the ingress of the
// host end of its veth, which is redirected to an IFB device whose token
// bucket queues rather than drops: gVisor's TCP recovers poorly from a
// policer's drops (a policed 6 MiB upload took minutes). A tbf on the guest
// end inside the namespace works as well (measured the same); the host side
// keeps the shaper out of the namespace that gVisor's netstack owns.
func (m *Manager) limitRate(ctx context.Context, hostIf, ifb string) error {
	if m.cfg.RateBytes < 0 {
		return nil
	}
	rate := strconv.FormatInt(m.cfg.RateBytes*8, 10) + "bit"
	burst := strconv.FormatInt(m.cfg.BurstBytes, 10) + "b"
	// An agent that died mid-setup may have left this slot's device; the
	// slot is ours now.
	run(ctx, "ip", "link", "del", ifb)
	for _, c := range [][]string{
		{"ip", "link", "add", ifb, "type", "ifb"},
		{"ip", "link", "set", ifb, "up"},
		{"tc", "qdisc", "add", "dev", ifb, "root", "tbf", "rate", rate, "burst", burst, "latency", "50ms"},
		{"tc", "qdisc", "add", "dev", hostIf, "handle", "ffff:", "ingress"},
		{"tc", "filter", "add", "dev", hostIf, "parent", "ffff:", "protocol", "all", "u32", "match", "u32", "0", "0",
			"action", "mirred", "egress", "redirect", "dev", ifb},
	} {
		if err := run(ctx, c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// Teardown removes everything Setup made for sb. It is idempotent and goes
// on past errors, returning the first.
func (m *Manager) Teardown(ctx context.Context, sb Sandbox) error {
	netns, hostIf, _ := m.names(sb.ID, sb.Slot)
	var errs []error
	if err := m.removeRules(ctx, sb); err != nil {
		errs = append(errs, err)
	}
	// Deleting either end deletes the pair; deleting the namespace deletes
	// the guest end.
	for _, link := range []string{hostIf, m.ifbName(sb.Slot)} {
		if err := run(ctx, "ip", "link", "del", link); err != nil && !isMissing(err) {
			errs = append(errs, err)
		}
	}
	if err := run(ctx, "ip", "netns", "del", netns); err != nil && !isMissing(err) {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		m.release(sb.Slot, sb.ID)
	}
	return errors.Join(errs...)
}

// removeRules deletes the sandbox's egress chain and its map element.
func (m *Manager) removeRules(ctx context.Context, sb Sandbox) error {
	_, hostIf, chain := m.names(sb.ID, sb.Slot)
	t := m.tableName()
	var errs []error
	// The map element first: the chain cannot go while it is referenced.
	if err := nft(ctx, fmt.Sprintf("delete element inet %s egress { \"%s\" }\n", t, hostIf)); err != nil && !isMissing(err) {
		errs = append(errs, err)
	}
	if err := nft(ctx, fmt.Sprintf("delete chain inet %s %s\n", t, chain)); err != nil && !isMissing(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func isMissing(err error) bool {
	s := err.Error()
	return strings.Contains(s, "No such file or directory") || strings.Contains(s, "Cannot find device") ||
		strings.Contains(s, "does not exist") || strings.Contains(s, "No such") || strings.Contains(s, "not found")
}

// Readd puts the sandbox's address and route back on its interface. gVisor
// takes the address off the interface when a sandbox starts, and a restore
// needs it there again.
func (m *Manager) Readd(ctx context.Context, sb Sandbox) error {
	netns, _, _ := m.names(sb.ID, sb.Slot)
	run(ctx, "ip", "-n", netns, "addr", "flush", "dev", "eth0")
	for _, s := range [][]string{
		{"-n", netns, "addr", "add", sb.GuestPrefix().String(), "dev", "eth0"},
		{"-n", netns, "link", "set", "eth0", "up"},
		{"-n", netns, "route", "replace", "default", "via", sb.HostIP.String()},
	} {
		if err := run(ctx, "ip", s...); err != nil {
			return fmt.Errorf("re-add address of %s: %w", sb.ID, err)
		}
	}
	return nil
}

// Leftovers returns the sandbox IDs that have a network namespace of this
// manager on the host, so that a restarted agent can remove those of
// sandboxes it no longer has.
func (m *Manager) Leftovers() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutPrefix(e.Name(), m.cfg.Prefix+"-"); ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
