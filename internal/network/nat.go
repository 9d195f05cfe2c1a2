package network

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The shared-address topology (Config.SharedGuestAddress). Every sandbox's
// guest has GuestAddr; between its namespace and the host sits a NAT
// namespace of its own:
//
//	host namespace         NAT namespace <prefix>n-<id>     sandbox namespace <prefix>-<id>
//	<prefix>h<slot> ------ ex0 (exposed .2/30)
//	(slot .1/30)           gw0 (GatewayAddr/30) ----------- eth0 (GuestAddr/30, gVisor's)
//
// The NAT namespace maps the exposed address to the guest address and
// back (DNAT toward the sandbox, SNAT from it), so the host sees each
// sandbox at a unique address, and every host rule (anti-spoofing, deny
// set, agent-only access, shaping, masquerade) works as in the
// unique-address topology. A second namespace rather than a second link
// in the sandbox's: runsc takes over every interface of the namespace it
// is given that is up and has an address, so the NAT side must not be
// there; and rather than NAT in the host's namespace: there every
// sandbox's link would carry the same addresses, which needs a conntrack
// zone and a routing table per sandbox.

// namespace is a named network namespace being built, with a handle in it.
// The zero value is none; close is safe on it.
type namespace struct {
	fd   netns.NsHandle
	h    *netlink.Handle
	open bool
}

// create makes the named namespace and opens it. On error nothing is left.
func (n *namespace) create(name string) error {
	if err := newNamedNS(name); err != nil {
		return err
	}
	fd, err := netns.GetFromPath(filepath.Join(netnsDir, name))
	if err == nil {
		n.fd, n.open = fd, true
		n.h, err = netlink.NewHandleAt(fd)
	}
	if err != nil {
		n.close()
		// The namespace is ours; the caller's undo is not pushed yet.
		return errors.Join(err, deleteNamedNS(name))
	}
	return nil
}

func (n *namespace) close() {
	if n.h != nil {
		n.h.Close()
		n.h = nil
	}
	if n.open {
		n.fd.Close()
		n.open = false
	}
}

// writeSysctls writes /proc/sys settings of the calling thread's
// namespace, in order.
func writeSysctls(kv ...[2]string) error {
	for _, s := range kv {
		if err := os.WriteFile("/proc/sys/"+s[0], []byte(s[1]), 0o644); err != nil {
			return fmt.Errorf("set %s: %w", s[0], err)
		}
	}
	return nil
}

// buildNAT makes the NAT namespace's links toward the sandbox, its
// addresses and route, and its nft rules, and sets *guestLink to the
// sandbox's eth0. Its objects die with the namespaces, so it pushes no
// undo.
func (m *Manager) buildNAT(sb Sandbox, inner, nat namespace, step func(string, func() error, func() error) error, guestLink *netlink.Link) error {
	var exLink, gwLink netlink.Link
	if err := step(stepNATVeth, func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: natGuestIf}, PeerName: guestInterface, PeerNamespace: netlink.NsFd(int(inner.fd))}
		if err := nat.h.LinkAdd(veth); err != nil {
			return err
		}
		var err error
		if exLink, err = nat.h.LinkByName(natHostIf); err != nil {
			return err
		}
		if gwLink, err = nat.h.LinkByName(natGuestIf); err != nil {
			return err
		}
		*guestLink, err = inner.h.LinkByName(guestInterface)
		return err
	}, nil); err != nil {
		return err
	}
	if err := step(stepNATAddrs, func() error {
		if err := nat.h.AddrAdd(exLink, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(sb.ExposedIP, 30))}); err != nil {
			return err
		}
		return nat.h.AddrAdd(gwLink, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(GatewayAddr, GuestBits))})
	}, nil); err != nil {
		return err
	}
	if err := step(stepNATUp, func() error {
		if err := nat.h.LinkSetUp(exLink); err != nil {
			return err
		}
		return nat.h.LinkSetUp(gwLink)
	}, nil); err != nil {
		return err
	}
	if err := step(stepNATRoute, func() error {
		return nat.h.RouteAdd(&netlink.Route{LinkIndex: exLink.Attrs().Index, Gw: sb.HostIP.AsSlice()})
	}, nil); err != nil {
		return err
	}
	return step(stepNATRules, func() error { return m.applyNATRules(sb, nat.fd) }, nil)
}

// applyNATRules writes the NAT namespace's table, in one transaction:
//
//	prerouting (dstnat): from ex0 to the exposed address: DNAT to GuestAddr.
//	postrouting (srcnat): from GuestAddr out of ex0: SNAT to the exposed address.
//	forward (policy drop): gw0 → ex0 from GuestAddr only, at most
//	  ConntrackLimit connections (this namespace's conntrack entries are
//	  the sandbox's too); ex0 → gw0. Nothing else.
//	input (policy drop): nothing reaches the NAT namespace itself (the
//	  gateway address included).
//
// The host's rules still see every packet after this, on the host end.
func (m *Manager) applyNATRules(sb Sandbox, ns netns.NsHandle) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("open nftables in the nat namespace: %w", err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: m.tableName()})
	accept, drop := nftables.ChainPolicyAccept, nftables.ChainPolicyDrop
	chain := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority, policy *nftables.ChainPolicy) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio, Policy: policy})
	}
	pre := chain("prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest, &accept)
	post := chain("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource, &accept)
	fwd := chain("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter, &drop)
	chain("input", nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter, &drop)
	nrules := 0
	rule := func(ch *nftables.Chain, exprs ...[]expr.Any) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: slices.Concat(exprs...)})
		nrules++
	}
	exposed, guest := netip.PrefixFrom(sb.ExposedIP, 32), netip.PrefixFrom(GuestAddr, 32)
	fromGuest, toGuest := ifname(unix.NFT_META_IIFNAME, natGuestIf+"\x00", true), ifname(unix.NFT_META_OIFNAME, natGuestIf+"\x00", true)
	fromHost, toHost := ifname(unix.NFT_META_IIFNAME, natHostIf+"\x00", true), ifname(unix.NFT_META_OIFNAME, natHostIf+"\x00", true)

	rule(pre, fromHost, ipIn(16, exposed, false), natTo(expr.NATTypeDestNAT, GuestAddr))
	rule(post, toHost, ipIn(12, guest, false), natTo(expr.NATTypeSourceNAT, sb.ExposedIP))
	if m.cfg.ConntrackLimit > 0 {
		rule(fwd, fromGuest, ctState(expr.CtStateBitNEW), []expr.Any{
			&expr.Connlimit{Count: uint32(m.cfg.ConntrackLimit), Flags: expr.NFT_CONNLIMIT_F_INV},
		}, verdict(expr.VerdictDrop))
	}
	rule(fwd, fromGuest, toHost, ipIn(12, guest, false), verdict(expr.VerdictAccept))
	rule(fwd, fromHost, toGuest, verdict(expr.VerdictAccept))
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install nat rules of %s: %w", sb.ID, err)
	}
	m.ops.nft(nrules + 5) // and the table and its four chains
	return nil
}

// natTo loads addr and translates the source or destination to it.
func natTo(typ expr.NATType, addr netip.Addr) []expr.Any {
	a := addr.As4()
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: a[:]},
		&expr.NAT{Type: typ, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
	}
}
