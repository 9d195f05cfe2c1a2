package network

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"nestbox.dev/internal/egress"
)

// The nft table of a manager (inet <prefix>_nestbox), in the order a
// packet meets it. "sandbox links" are the host ends of the sandboxes'
// veths (<prefix>h*).
//
//	prerouting (raw, before conntrack): from sandbox links, drop anything
//	  but IPv4, and drop every packet whose (link, source) is not in
//	  @guests: a sandbox sends only from its own address.
//	forward: sandbox to sandbox dropped; to sandbox links only replies;
//	  from sandbox links to @deny dropped (the operator's list, the pool,
//	  the host's addresses) BEFORE the per-sandbox chain that @egress maps
//	  the link to (conntrack limit, allow list, deny list, internet);
//	  anything else from sandbox links dropped.
//	input: from sandbox links only replies to what the host opened.
//	output: to sandbox links only packets of sockets marked AgentMark, or
//	  replies (ct established,related).
//	postrouting (nat): the pool leaving by another link is masqueraded.
const (
	setEgress = "egress" // ifname : verdict (jump sb<slot>)
	setDeny   = "deny"   // ipv4 intervals
	setGuests = "guests" // ifname . ipv4_addr
)

func (m *Manager) table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: m.tableName()}
}

func (m *Manager) sets() (egressMap, deny, guests *nftables.Set) {
	t := m.table()
	egressMap = &nftables.Set{Table: t, Name: setEgress, IsMap: true, KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict}
	deny = &nftables.Set{Table: t, Name: setDeny, Interval: true, KeyType: nftables.TypeIPAddr}
	guests = &nftables.Set{Table: t, Name: setGuests, Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr)}
	return
}

func newConn() (*nftables.Conn, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("open nftables: %w", err)
	}
	return c, nil
}

// installBase writes the host-wide rules in one atomic transaction. The
// base chains are flushed and rewritten; the per-sandbox chains and the
// elements of @egress and @guests stay, so adopted sandboxes keep their
// network.
func (m *Manager) installBase(deny []netip.Prefix) error {
	c, err := newConn()
	if err != nil {
		return err
	}
	t := c.AddTable(m.table())
	egressMap, denySet, guests := m.sets()
	for _, s := range []*nftables.Set{egressMap, denySet, guests} {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("install host rules: %w", err)
		}
	}
	c.FlushSet(denySet)
	if err := c.SetAddElements(denySet, denyElements(deny)); err != nil {
		return fmt.Errorf("install host rules: %w", err)
	}
	accept := nftables.ChainPolicyAccept
	chain := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		ch := c.AddChain(&nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept})
		c.FlushChain(ch)
		return ch
	}
	pre := chain("prerouting", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityRaw)
	fwd := chain("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter)
	in := chain("input", nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter)
	out := chain("output", nftables.ChainTypeFilter, nftables.ChainHookOutput, nftables.ChainPriorityFilter)
	post := chain("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	rules := 0
	rule := func(ch *nftables.Chain, exprs ...[]expr.Any) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: slices.Concat(exprs...)})
		rules++
	}
	sbIn, sbOut := ifname(unix.NFT_META_IIFNAME, m.ifPattern(), true), ifname(unix.NFT_META_OIFNAME, m.ifPattern(), true)

	// prerouting: IPv4 only, and only from the sandbox's own address.
	rule(pre, sbIn, nfproto(false), verdict(expr.VerdictDrop))
	rule(pre, sbIn, []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Payload{DestRegister: 12, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: guests.Name, SetID: guests.ID, Invert: true},
	}, verdict(expr.VerdictDrop))

	// forward
	rule(fwd, sbIn, sbOut, verdict(expr.VerdictDrop))
	rule(fwd, sbOut, ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept))
	rule(fwd, sbOut, verdict(expr.VerdictDrop))
	rule(fwd, sbIn, nfproto(true), daddrIn(denySet, false), verdict(expr.VerdictDrop))
	rule(fwd, []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: egressMap.Name, SetID: egressMap.ID},
	})
	rule(fwd, sbIn, verdict(expr.VerdictDrop))

	// input
	rule(in, sbIn, ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept))
	rule(in, sbIn, verdict(expr.VerdictDrop))

	// output: only the agent's marked sockets open connections to sandboxes.
	rule(out, sbOut, ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept))
	rule(out, sbOut, []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(AgentMark)},
	}, verdict(expr.VerdictDrop))

	// postrouting
	rule(post, nfproto(true), ipIn(12, m.pool, false), ifname(unix.NFT_META_OIFNAME, m.ifPattern(), false), []expr.Any{&expr.Masq{}})

	if err := c.Flush(); err != nil {
		return fmt.Errorf("install host rules: %w", err)
	}
	m.ops.nft(rules + len(deny))
	return nil
}

// writeDeny replaces the deny set's content in one transaction.
func (m *Manager) writeDeny(deny []netip.Prefix) error {
	c, err := newConn()
	if err != nil {
		return err
	}
	_, denySet, _ := m.sets()
	c.FlushSet(denySet)
	els := denyElements(deny)
	if err := c.SetAddElements(denySet, els); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("update egress deny set: %w", err)
	}
	m.ops.nft(len(els))
	return nil
}

// Close removes the host-wide rules. Call it only when no sandbox of this
// manager runs any more (tests, uninstall); an agent that restarts keeps them.
func (m *Manager) Close(ctx context.Context) error {
	c, err := newConn()
	if err != nil {
		return err
	}
	c.DelTable(m.table())
	m.denyMu.Lock()
	m.watch.close()
	m.denyMu.Unlock()
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove host rules: %w", err)
	}
	m.ops.nft(1)
	return nil
}

func (m *Manager) chainName(slot int) string { return "sb" + strconv.Itoa(slot) }

// applyRules installs the sandbox's egress chain, hooks it to its link and
// records its address for anti-spoofing, in one transaction.
func (m *Manager) applyRules(sb Sandbox, opts Options) error {
	c, err := newConn()
	if err != nil {
		return err
	}
	ch, objects := m.writeEgressChain(c, sb, opts) // flushes a chain left by an agent that died mid-setup
	egressMap, _, guests := m.sets()
	if err := c.SetAddElements(egressMap, []nftables.SetElement{{
		Key: ifnameKey(sb.HostIf), VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: ch.Name},
	}}); err != nil {
		return err
	}
	if err := c.SetAddElements(guests, []nftables.SetElement{{Key: guestKey(sb)}}); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install rules of %s: %w", sb.ID, err)
	}
	m.ops.nft(objects + 2) // and the map and set elements
	return nil
}

// SetEgress replaces the egress rules of sb's running network with opts',
// in one transaction: connections the new rules drop stop at their next
// packet. A warm pool's sandbox takes the rules of the create it serves
// this way. opts are checked as Setup checks them.
func (m *Manager) SetEgress(ctx context.Context, sb Sandbox, opts Options) error {
	if err := checkOptions(opts); err != nil {
		return err
	}
	deny, err := m.refreshDeny()
	if err != nil {
		return fmt.Errorf("set egress of %s: %w", sb.ID, err)
	}
	if err := egress.Check(opts.AllowOut, deny); err != nil {
		return fmt.Errorf("set egress of %s: %w", sb.ID, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := newConn()
	if err != nil {
		return err
	}
	_, objects := m.writeEgressChain(c, sb, opts)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("set egress of %s: %w", sb.ID, err)
	}
	m.ops.nft(objects)
	return nil
}

// writeEgressChain queues on c the egress chain of sb's slot, emptied and
// filled with opts' rules; objects is how many nft objects that is (the
// chain and its rules, for the operation counters).
func (m *Manager) writeEgressChain(c *nftables.Conn, sb Sandbox, opts Options) (_ *nftables.Chain, objects int) {
	t := m.table()
	ch := c.AddChain(&nftables.Chain{Name: m.chainName(sb.Slot), Table: t})
	c.FlushChain(ch)
	objects = 1 // the chain
	rule := func(exprs ...[]expr.Any) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: slices.Concat(exprs...)})
		objects++
	}
	// The operator's deny list ran before this chain: what is left is the
	// tenant's choice.
	if m.cfg.ConntrackLimit > 0 {
		rule(ctState(expr.CtStateBitNEW), []expr.Any{
			&expr.Connlimit{Count: uint32(m.cfg.ConntrackLimit), Flags: expr.NFT_CONNLIMIT_F_INV},
		}, verdict(expr.VerdictDrop))
	}
	for _, p := range opts.AllowOut {
		rule(nfproto(true), ipIn(16, p, false), verdict(expr.VerdictAccept))
	}
	for _, p := range opts.DenyOut {
		rule(nfproto(true), ipIn(16, p, false), verdict(expr.VerdictDrop))
	}
	if opts.Internet {
		rule(verdict(expr.VerdictAccept))
	} else {
		rule(verdict(expr.VerdictDrop))
	}
	return ch, objects
}

// addGuest records sb's address in @guests (idempotent).
func (m *Manager) addGuest(sb Sandbox) error {
	c, err := newConn()
	if err != nil {
		return err
	}
	_, _, guests := m.sets()
	if err := c.SetAddElements(guests, []nftables.SetElement{{Key: guestKey(sb)}}); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return err
	}
	m.ops.nft(1)
	return nil
}

// removeRules deletes the sandbox's map and set elements and its chain.
// Each goes in its own transaction, so that one already gone (ENOENT)
// does not keep the others.
func (m *Manager) removeRules(sb Sandbox) error {
	egressMap, _, guests := m.sets()
	var errs []error
	del := func(what string, add func(c *nftables.Conn) error) {
		c, err := newConn()
		if err == nil {
			err = add(c)
		}
		if err == nil {
			err = c.Flush()
			m.ops.nft(1)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove %s of %s: %w", what, sb.ID, err))
		}
	}
	// The map element first: the chain cannot go while it is referenced.
	del("egress map element", func(c *nftables.Conn) error {
		return c.SetDeleteElements(egressMap, []nftables.SetElement{{Key: ifnameKey(sb.HostIf)}})
	})
	if sb.Addr().Is4() {
		del("guest address element", func(c *nftables.Conn) error {
			return c.SetDeleteElements(guests, []nftables.SetElement{{Key: guestKey(sb)}})
		})
	}
	del("egress chain", func(c *nftables.Conn) error {
		c.DelChain(&nftables.Chain{Name: m.chainName(sb.Slot), Table: m.table()})
		return nil
	})
	return errors.Join(errs...)
}

// ifnameKey is an interface name as nft keys hold it: IFNAMSIZ bytes.
func ifnameKey(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// guestKey is sb's element of @guests: its host end and the address its
// packets have on the host (the exposed one behind a NAT namespace).
func guestKey(sb Sandbox) []byte {
	ip := sb.Addr().As4()
	return append(ifnameKey(sb.HostIf), ip[:]...)
}

// ifname matches the input or output interface name: a prefix (the
// pattern "name*") or, with prefix false, everything but that prefix.
func ifname(key uint32, prefix string, match bool) []expr.Any {
	op := expr.CmpOpEq
	if !match {
		op = expr.CmpOpNeq
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKey(key), Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: []byte(prefix)},
	}
}

// nfproto matches IPv4 packets (or, with v4 false, everything else).
func nfproto(v4 bool) []expr.Any {
	op := expr.CmpOpEq
	if !v4 {
		op = expr.CmpOpNeq
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

// ipIn matches the IPv4 address at offset (12 source, 16 destination) of
// the network header against p.
func ipIn(offset uint32, p netip.Prefix, negate bool) []expr.Any {
	op := expr.CmpOpEq
	if negate {
		op = expr.CmpOpNeq
	}
	p = p.Masked()
	addr := p.Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: net.CIDRMask(p.Bits(), 32), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: op, Register: 1, Data: addr[:]},
	}
}

// daddrIn matches the IPv4 destination against a set.
func daddrIn(s *nftables.Set, invert bool) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, Invert: invert},
	}
}

// ctState matches packets whose conntrack state has any of bits.
func ctState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
}

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

// mergePrefixes sorts list and drops every prefix another one covers.
func mergePrefixes(list []netip.Prefix) []netip.Prefix {
	list = slices.Clone(list)
	for i := range list {
		list[i] = list[i].Masked()
	}
	slices.SortFunc(list, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var out []netip.Prefix
	for _, p := range list {
		if n := len(out); n > 0 && out[n-1].Contains(p.Addr()) && out[n-1].Bits() <= p.Bits() {
			continue
		}
		out = append(out, p)
	}
	return out
}

// denyElements turns disjoint sorted prefixes into interval elements,
// joining adjacent ones (the kernel refuses touching intervals).
func denyElements(list []netip.Prefix) []nftables.SetElement {
	type span struct{ lo, hi uint64 } // hi exclusive
	var spans []span
	for _, p := range list {
		a := p.Addr().As4()
		lo := uint64(binary.BigEndian.Uint32(a[:]))
		hi := lo + 1<<(32-p.Bits())
		if n := len(spans); n > 0 && spans[n-1].hi >= lo {
			spans[n-1].hi = max(spans[n-1].hi, hi)
			continue
		}
		spans = append(spans, span{lo, hi})
	}
	var els []nftables.SetElement
	for _, s := range spans {
		els = append(els, nftables.SetElement{Key: binary.BigEndian.AppendUint32(nil, uint32(s.lo))})
		if s.hi <= 0xffffffff {
			els = append(els, nftables.SetElement{Key: binary.BigEndian.AppendUint32(nil, uint32(s.hi)), IntervalEnd: true})
		}
	}
	return els
}

// dumpAttempts bounds the re-reads of an interrupted netlink dump.
const dumpAttempts = 20

// hostAddrs lists the IPv4 addresses on the host's interfaces. The kernel
// marks a dump interrupted when an address changes while it is read (other
// sandboxes' links come and go all the time); such a dump may miss an
// address, so it is read again rather than used.
func hostAddrs() ([]netip.Addr, error) {
	var addrs []netlink.Addr
	var err error
	for i := range dumpAttempts {
		addrs, err = netlink.AddrList(nil, netlink.FAMILY_V4)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
		time.Sleep(time.Duration(i+1) * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok {
			out = append(out, ip)
		}
	}
	return out, nil
}
