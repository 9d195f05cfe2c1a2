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

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"nestbox.dev/internal/egress"
	"nestbox.dev/internal/errdefs"
)

func (m *Manager) names(id string, slot int) (ns, hostIf string) {
	return m.cfg.Prefix + "-" + id, m.cfg.Prefix + "h" + strconv.Itoa(slot)
}

// natName is the name of sandbox id's NAT namespace. Its prefix is not
// names' ns prefix followed by anything ("nbxn-" against "nbx-"), so
// Leftovers tells the two apart.
func (m *Manager) natName(id string) string { return m.cfg.Prefix + "n-" + id }

func (m *Manager) ifbName(slot int) string { return m.cfg.Prefix + "i" + strconv.Itoa(slot) }

// The steps of Setup, in order; failAfter runs after each. The nat-*
// steps are those of the shared-address topology only.
const (
	stepNetNS      = "netns"
	stepLoopback   = "loopback"
	stepNATNS      = "nat-netns"
	stepNATSysctl  = "nat-sysctl"
	stepVeth       = "veth"
	stepHostIPv6   = "host-ipv6-off"
	stepHostAddr   = "host-address"
	stepHostUp     = "host-up"
	stepNATVeth    = "nat-veth"
	stepNATAddrs   = "nat-addresses"
	stepNATUp      = "nat-up"
	stepNATRoute   = "nat-default-route"
	stepNATRules   = "nat-rules"
	stepGuestIPv6  = "guest-ipv6-off"
	stepGuestAddr  = "guest-address"
	stepGuestUp    = "guest-up"
	stepRoute      = "default-route"
	stepRules      = "rules"
	stepIFB        = "ifb"
	stepIFBUp      = "ifb-up"
	stepShaper     = "shaper"
	stepIngress    = "ingress-qdisc"
	stepRedirect   = "ingress-redirect"
	guestInterface = "eth0"
	// The NAT namespace's links: natGuestIf faces the sandbox (peer of
	// its eth0, with GatewayAddr), natHostIf faces the host (peer of
	// the host end, with the exposed address).
	natGuestIf = "gw0"
	natHostIf  = "ex0"
)

// Setup builds the network of sandbox id. On error everything it made is
// removed again and the slot is free. An AllowOut entry that overlaps what
// the host always denies (the operator's list, the pool, the host's
// addresses) is rejected with errdefs.Invalid.
func (m *Manager) Setup(ctx context.Context, id string, opts Options) (sb Sandbox, err error) {
	if id == "" || strings.ContainsAny(id, "/ \x00") || len(id) > 200 {
		return Sandbox{}, errdefs.Invalid("invalid sandbox id %q", id)
	}
	if err := checkOptions(opts); err != nil {
		return Sandbox{}, err
	}
	deny, err := m.refreshDeny()
	if err != nil {
		return Sandbox{}, fmt.Errorf("set up network of %s: %w", id, err)
	}
	if err := egress.Check(opts.AllowOut, deny); err != nil {
		return Sandbox{}, fmt.Errorf("set up network of %s: %w", id, err)
	}
	slot, err := m.allocate(id)
	if err != nil {
		return Sandbox{}, err
	}
	return m.build(ctx, id, slot, opts, true, m.cfg.SharedGuestAddress)
}

// checkOptions refuses egress rules the nft rules cannot express.
func checkOptions(opts Options) error {
	for _, p := range append(append([]netip.Prefix{}, opts.AllowOut...), opts.DenyOut...) {
		if !p.IsValid() || !p.Addr().Is4() {
			return errdefs.Invalid("egress rule %s: only IPv4 prefixes are supported", p)
		}
	}
	return nil
}

// Rebuild builds the network of a paused sandbox again in the slot it kept
// (see Release): same namespace path, links and addresses, and the same
// topology as sb had, so that a restored netstack finds its address where
// it was. On error everything it
// made is removed again; the slot stays reserved for sb.
func (m *Manager) Rebuild(ctx context.Context, sb Sandbox, opts Options) (Sandbox, error) {
	m.mu.Lock()
	owner, ok := m.used[sb.Slot]
	if !ok {
		m.used[sb.Slot] = sb.ID
	}
	m.mu.Unlock()
	if ok && owner != sb.ID {
		return Sandbox{}, errdefs.Conflict("network slot %d is used by %s, not %s", sb.Slot, owner, sb.ID)
	}
	deny, err := m.refreshDeny()
	if err != nil {
		return Sandbox{}, fmt.Errorf("rebuild network of %s: %w", sb.ID, err)
	}
	if err := egress.Check(opts.AllowOut, deny); err != nil {
		return Sandbox{}, fmt.Errorf("rebuild network of %s: %w", sb.ID, err)
	}
	// A crash between Release's steps may have left some of it.
	if err := m.teardown(sb, false); err != nil {
		return Sandbox{}, fmt.Errorf("rebuild network of %s: %w", sb.ID, err)
	}
	return m.build(ctx, sb.ID, sb.Slot, opts, false, sb.NATNS != "")
}

// Reserve marks the slot of a paused sandbox as used after an agent
// restart, without building anything: its address is kept for it.
func (m *Manager) Reserve(sb Sandbox) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if owner, ok := m.used[sb.Slot]; ok && owner != sb.ID {
		return errdefs.Conflict("network slot %d is used by %s and %s", sb.Slot, owner, sb.ID)
	}
	m.used[sb.Slot] = sb.ID
	return nil
}

// build makes the kernel objects of sandbox id in slot, in the
// shared-address topology if shared is set. On error it removes what it
// made, and frees the slot if release is set.
func (m *Manager) build(ctx context.Context, id string, slot int, opts Options, release, shared bool) (sb Sandbox, err error) {
	nsName, hostIf := m.names(id, slot)
	host, guest := m.slotAddrs(slot)
	sb = Sandbox{ID: id, Slot: slot, NetNS: filepath.Join(netnsDir, nsName), HostIf: hostIf, HostIP: host, GuestIP: guest, Bits: 30}
	if shared {
		sb.NATNS = filepath.Join(netnsDir, m.natName(id))
		sb.ExposedIP, sb.GuestIP, sb.Bits = guest, GuestAddr, GuestBits
	}
	ifb := m.ifbName(slot)
	root := &netlink.Handle{} // the host's namespace

	// A cleanup stack: each step that makes something pushes its undo,
	// and a failure unwinds exactly what this call made.
	var undo []func() error
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				if uerr := undo[i](); uerr != nil {
					m.log.Error("undo network setup", "sandbox", id, "err", uerr)
				}
			}
			if release {
				m.release(slot, id)
			}
		}
	}()
	step := func(name string, do func() error, undoFn func() error) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("set up network of %s: %w", id, err)
		}
		if err := do(); err != nil {
			return fmt.Errorf("set up network of %s: %s: %w", id, name, err)
		}
		if undoFn != nil {
			undo = append(undo, undoFn)
		}
		if m.failAfter != nil {
			if err := m.failAfter(name); err != nil {
				return fmt.Errorf("set up network of %s: after %s: %w", id, name, err)
			}
		}
		return nil
	}

	var (
		inner, nat namespace // the sandbox's namespace; the NAT namespace (shared only)
		hostLink   netlink.Link
		guestLink  netlink.Link
		ifbLink    netlink.Link
	)
	defer inner.close()
	defer nat.close()
	if err := step(stepNetNS, func() error { return inner.create(nsName) },
		func() error { return deleteNamedNS(nsName) }); err != nil {
		return sb, err
	}
	if err := step(stepLoopback, func() error {
		lo, err := inner.h.LinkByName("lo")
		if err == nil {
			err = inner.h.LinkSetUp(lo)
		}
		return err
	}, nil); err != nil {
		return sb, err
	}
	// The host end's peer: the sandbox's eth0, or the NAT namespace's
	// host-facing link. Peers are created inside their namespace under
	// their final name, so names never collide between sandboxes.
	peerNS, peerName := inner, guestInterface
	if shared {
		natName := m.natName(id)
		if err := step(stepNATNS, func() error { return nat.create(natName) },
			func() error { return deleteNamedNS(natName) }); err != nil {
			return sb, err
		}
		// IPv6 off for the whole namespace before its links exist, and
		// forwarding on: it routes between the sandbox and the host.
		if err := step(stepNATSysctl, func() error {
			return onThreadIn(nat.fd, func() error {
				return writeSysctls(
					[2]string{"net/ipv6/conf/all/disable_ipv6", "1"},
					[2]string{"net/ipv6/conf/default/disable_ipv6", "1"},
					[2]string{"net/ipv4/ip_forward", "1"})
			})
		}, nil); err != nil {
			return sb, err
		}
		peerNS, peerName = nat, natHostIf
	}
	if err := step(stepVeth, func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostIf}, PeerName: peerName, PeerNamespace: netlink.NsFd(int(peerNS.fd))}
		if err := root.LinkAdd(veth); err != nil {
			return err
		}
		var err error
		if hostLink, err = root.LinkByName(hostIf); err == nil && !shared {
			guestLink, err = inner.h.LinkByName(guestInterface)
		}
		if err != nil {
			return errors.Join(err, deleteLink(root, hostIf))
		}
		return nil
	}, func() error { return deleteLink(root, hostIf) }); err != nil {
		return sb, err
	}
	// IPv6 off on both ends before they are up: no link-local address,
	// nothing for a sandbox to reach the host by.
	if err := step(stepHostIPv6, func() error { return disableIPv6(hostIf) }, nil); err != nil {
		return sb, err
	}
	if err := step(stepHostAddr, func() error {
		return root.AddrAdd(hostLink, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(host, 30))})
	}, nil); err != nil {
		return sb, err
	}
	if err := step(stepHostUp, func() error { return root.LinkSetUp(hostLink) }, nil); err != nil {
		return sb, err
	}
	if shared {
		if err := m.buildNAT(sb, inner, nat, step, &guestLink); err != nil {
			return sb, err
		}
	}
	if err := step(stepGuestIPv6, func() error {
		return onThreadIn(inner.fd, func() error { return disableIPv6(guestInterface) })
	}, nil); err != nil {
		return sb, err
	}
	if err := step(stepGuestAddr, func() error {
		return inner.h.AddrAdd(guestLink, &netlink.Addr{IPNet: ipNet(sb.GuestPrefix())})
	}, nil); err != nil {
		return sb, err
	}
	if err := step(stepGuestUp, func() error { return inner.h.LinkSetUp(guestLink) }, nil); err != nil {
		return sb, err
	}
	if err := step(stepRoute, func() error {
		return inner.h.RouteAdd(&netlink.Route{LinkIndex: guestLink.Attrs().Index, Gw: sb.Gateway().AsSlice()})
	}, nil); err != nil {
		return sb, err
	}
	if err := step(stepRules, func() error { return m.applyRules(sb, opts) }, func() error { return m.removeRules(sb) }); err != nil {
		return sb, err
	}
	if m.cfg.RateBytes < 0 {
		return sb, nil
	}
	// Shaping: the sandbox's egress is the ingress of the host end, which
	// is redirected to an IFB device whose token bucket queues rather
	// than drops: gVisor's TCP recovers poorly from a policer's drops (a
	// policed 6 MiB upload took minutes). A tbf on the guest end inside
	// the namespace works as well (measured the same); the host side keeps
	// the shaper out of the namespace that gVisor's netstack owns.
	if err := step(stepIFB, func() error {
		// An agent that died mid-setup may have left this slot's device;
		// the slot is ours now.
		if err := deleteLink(root, ifb); err != nil {
			return err
		}
		if err := root.LinkAdd(&netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: ifb}}); err != nil {
			return err
		}
		var err error
		if ifbLink, err = root.LinkByName(ifb); err != nil {
			return errors.Join(err, deleteLink(root, ifb))
		}
		return nil
	}, func() error { return deleteLink(root, ifb) }); err != nil {
		return sb, err
	}
	if err := step(stepIFBUp, func() error { return root.LinkSetUp(ifbLink) }, nil); err != nil {
		return sb, err
	}
	if err := step(stepShaper, func() error {
		rate, burst := uint64(m.cfg.RateBytes), uint32(min(m.cfg.BurstBytes, 1<<31))
		// As tc's "latency 50ms": the queue holds 50 ms at the rate on
		// top of the burst.
		limit := uint32(min(rate/20+uint64(burst), 1<<31))
		return root.QdiscAdd(&netlink.Tbf{
			QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifbLink.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
			Rate:       rate, Limit: limit, Buffer: netlink.Xmittime(rate, burst),
		})
	}, nil); err != nil {
		return sb, err
	}
	if err := step(stepIngress, func() error {
		return root.QdiscAdd(&netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: hostLink.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}})
	}, nil); err != nil {
		return sb, err
	}
	if err := step(stepRedirect, func() error {
		return root.FilterAdd(&netlink.U32{
			FilterAttrs: netlink.FilterAttrs{LinkIndex: hostLink.Attrs().Index, Parent: netlink.MakeHandle(0xffff, 0),
				Priority: 1, Protocol: unix.ETH_P_ALL},
			Actions: []netlink.Action{netlink.NewMirredAction(ifbLink.Attrs().Index)},
		})
	}, nil); err != nil {
		return sb, err
	}
	return sb, nil
}

// Teardown removes everything Setup made for sb and frees its slot. It is
// idempotent and goes on past errors, returning them joined.
func (m *Manager) Teardown(ctx context.Context, sb Sandbox) error {
	return m.teardown(sb, true)
}

// Release removes the kernel objects of sb (namespace, veth pair, IFB,
// nft chain and set entries) but keeps its slot, and so its addresses,
// reserved for it: a paused sandbox's restored netstack comes back with
// the same address. Rebuild makes them again; Teardown frees the slot.
// It is idempotent.
func (m *Manager) Release(ctx context.Context, sb Sandbox) error {
	if sb.Slot < 0 {
		return errdefs.Invalid("release network of %s: unknown slot", sb.ID)
	}
	return m.teardown(sb, false)
}

func (m *Manager) teardown(sb Sandbox, free bool) error {
	nsName, hostIf := m.names(sb.ID, sb.Slot)
	natName := m.natName(sb.ID)
	if sb.Slot < 0 {
		// A leftover whose slot is unknown: its links and rules cannot be
		// named (they carry the slot), so remove what can be, the
		// namespaces and with them the ends of the pairs in them.
		return errors.Join(deleteNamedNS(nsName), deleteNamedNS(natName))
	}
	if sb.HostIf == "" {
		sb.HostIf = hostIf
	}
	root := &netlink.Handle{}
	var errs []error
	if err := m.removeRules(sb); err != nil {
		errs = append(errs, err)
	}
	// Deleting either end deletes the pair; deleting the namespace deletes
	// the guest end.
	for _, link := range []string{hostIf, m.ifbName(sb.Slot)} {
		if err := deleteLink(root, link); err != nil {
			errs = append(errs, err)
		}
	}
	// The NAT namespace goes whatever sb says: a unique-address sandbox
	// has none, and a missing one is no error.
	for _, ns := range []string{nsName, natName} {
		if err := deleteNamedNS(ns); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && free {
		m.release(sb.Slot, sb.ID)
	}
	return errors.Join(errs...)
}

// Readd puts the sandbox's address and route back on its interface. gVisor
// takes the address off the interface when a sandbox starts, and a restore
// needs it there again.
func (m *Manager) Readd(ctx context.Context, sb Sandbox) error {
	nsName, _ := m.names(sb.ID, sb.Slot)
	fail := func(err error) error { return fmt.Errorf("re-add address of %s: %w", sb.ID, err) }
	nsh, err := netns.GetFromName(nsName)
	if err != nil {
		return fail(err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return fail(err)
	}
	defer h.Close()
	eth0, err := h.LinkByName(guestInterface)
	if err != nil {
		return fail(err)
	}
	addrs, err := h.AddrList(eth0, netlink.FAMILY_ALL)
	if err != nil {
		return fail(err)
	}
	for _, a := range addrs {
		if err := h.AddrDel(eth0, &a); err != nil && !isNotFound(err) && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fail(err)
		}
	}
	if err := h.AddrAdd(eth0, &netlink.Addr{IPNet: ipNet(sb.GuestPrefix())}); err != nil {
		return fail(err)
	}
	if err := h.LinkSetUp(eth0); err != nil {
		return fail(err)
	}
	if err := h.RouteReplace(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: sb.Gateway().AsSlice()}); err != nil {
		return fail(err)
	}
	return nil
}

// Leftovers returns the sandbox IDs that have a network namespace (or a
// NAT namespace) of this manager on the host, so that a restarted agent can remove those of
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
	seen := map[string]bool{}
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Name(), m.cfg.Prefix+"-")
		if !ok {
			// A NAT namespace whose sandbox namespace is gone already
			// (a crash in the middle of a teardown).
			id, ok = strings.CutPrefix(e.Name(), m.cfg.Prefix+"n-")
		}
		if ok && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}
