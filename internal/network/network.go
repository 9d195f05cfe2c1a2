// Package network gives each sandbox its own network namespace on the host:
// a veth pair whose host end is the sandbox's only way out, an address pair
// from a slot allocator over a private range, NAT to the outside when the
// sandbox may use the internet, the operator's egress deny list (evaluated
// before any per-sandbox allow rule), per-sandbox allow and deny lists, an
// egress rate limit, a per-sandbox conntrack limit, anti-spoofing, and rules
// that keep sandboxes away from each other, from every address of the host
// and keep local processes other than the agent away from the sandboxes.
// Optionally (Config.SharedGuestAddress) every guest has the same address
// behind a NAT namespace of its own, so that sandboxes restored from one
// checkpoint can run side by side (nat.go).
//
// It drives the kernel over netlink, in-process: links, addresses, routes,
// namespaces and qdiscs with github.com/vishvananda/netlink and netns, the
// nft table with github.com/google/nftables. Nothing is forked, and a
// missing object is recognised by its errno, never by error text.
//
// Imported by the host agent.
package network

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"nestbox.dev/internal/egress"
	"nestbox.dev/internal/errdefs"
)

// Defaults.
const (
	DefaultCIDR = "10.200.0.0/16"
	// DefaultRate and DefaultBurst bound a sandbox's outbound traffic:
	// 200 MB/s sustained with a 100 MB burst.
	DefaultRate  = 200 << 20
	DefaultBurst = 100 << 20
	// DefaultConntrackLimit is how many connections (conntrack entries)
	// one sandbox may have through the host at once.
	DefaultConntrackLimit = 8192
	netnsDir              = "/var/run/netns"
	table                 = "nestbox"
)

// AgentMark is the socket mark (SO_MARK) of the agent's own connections to
// sandboxes. The host's rules drop every packet toward a sandbox that does
// not carry it, so a local process cannot reach a sandbox's envd; setting
// a mark needs CAP_NET_ADMIN, so an unprivileged user cannot forge it.
const AgentMark = 0x6e627800

// MarkControl marks a socket with AgentMark. Use it as net.Dialer.Control
// for every connection of the agent to a sandbox. It fails without
// CAP_NET_ADMIN.
func MarkControl(network, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, AgentMark)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("mark socket to %s: %w", address, serr)
	}
	return nil
}

// Config configures a Manager. Zero values mean the documented defaults.
type Config struct {
	// CIDR is the pool sandbox addresses come from; each sandbox takes a
	// /30 of it (host end .1, sandbox .2). "" means DefaultCIDR.
	CIDR string
	// Prefix starts every name this manager creates (namespaces, links,
	// nft chains); "" means "nbx". Two managers on one host need different
	// prefixes, neither the start of the other (names are matched by
	// prefix: nbxh* links, nbx-* and nbxn-* namespaces), and pools.
	Prefix string
	// RateBytes and BurstBytes limit each sandbox's egress; zero means the
	// defaults, negative means unlimited.
	RateBytes  int64
	BurstBytes int64
	// EgressDeny is the operator's deny list: destinations no sandbox
	// reaches whatever its options say. nil means egress.DefaultDeny();
	// an empty non-nil list denies nothing beyond what is always denied:
	// the pool itself and every address of the host.
	EgressDeny []netip.Prefix
	// ConntrackLimit bounds the connections each sandbox has open through
	// the host; zero means DefaultConntrackLimit.
	ConntrackLimit int
	// SharedGuestAddress gives every sandbox the same guest address,
	// GuestAddr with gateway GatewayAddr, behind a NAT namespace of its
	// own that maps it to the sandbox's exposed address from the pool (the
	// address the host and the agent see and dial). A sandbox restored
	// from another's checkpoint (a fork) keeps the guest address its
	// netstack was saved with. false: the guest has the pool address
	// itself, as before. A Sandbox keeps the topology it was built with
	// (Rebuild of a paused sandbox follows the Sandbox, not this field).
	SharedGuestAddress bool
	Logger             *slog.Logger
}

// The guest side of the shared-address topology: every sandbox's
// netstack has GuestAddr/GuestBits with the default route via GatewayAddr.
// Link-local, so that it cannot hide a destination a tenant may be
// allowed: no operator routes 169.254/16, the default deny list denies it
// whole, and the host's own namespace never sees these addresses (they
// live only between a sandbox and its NAT namespace). The /30 sits at the
// start of 169.254/16, away from the metadata address 169.254.169.254,
// which stays a routed destination that the host's deny set catches.
var (
	GuestAddr   = netip.MustParseAddr("169.254.0.21")
	GatewayAddr = netip.MustParseAddr("169.254.0.22")
)

// GuestBits is the prefix length of GuestAddr.
const GuestBits = 30

// Options are one sandbox's network settings.
type Options struct {
	// Internet lets the sandbox open connections beyond the host (NATed).
	Internet bool
	// AllowOut and DenyOut are destination prefixes. The operator's deny
	// list comes before both, and an AllowOut entry overlapping it is
	// rejected; then allow wins over deny, and deny wins over Internet.
	AllowOut []netip.Prefix
	DenyOut  []netip.Prefix
}

// Sandbox is the network of one sandbox. It is plain data so that the
// agent can keep it in the sandbox's state file and adopt it after a restart.
type Sandbox struct {
	ID    string `json:"id"`
	Slot  int    `json:"slot"`
	NetNS string `json:"netns"` // path of the namespace the runtime joins
	// NATNS is the path of the NAT namespace between NetNS and the host,
	// "" in the unique-address topology (and in state files written
	// before the shared one existed).
	NATNS  string     `json:"nat_netns,omitempty"`
	HostIf string     `json:"host_if"`
	HostIP netip.Addr `json:"host_ip"`
	// GuestIP is the address inside the sandbox (for the OCI spec and
	// Readd): the slot's own address, or GuestAddr when NATNS is set.
	GuestIP netip.Addr `json:"guest_ip"`
	Bits    int        `json:"bits"`
	// ExposedIP is the unique address the host sees the sandbox at when
	// NATNS is set (its NAT namespace maps it to and from GuestIP);
	// invalid in the unique-address topology. Dial Addr, not this.
	ExposedIP netip.Addr `json:"exposed_ip,omitzero"`
}

// GuestPrefix is the sandbox's address with its prefix length.
func (s Sandbox) GuestPrefix() netip.Prefix { return netip.PrefixFrom(s.GuestIP, s.Bits) }

// Addr is the address the host reaches the sandbox at: the one to dial,
// and the source address its traffic has on the host. It is unique per
// sandbox in both topologies.
func (s Sandbox) Addr() netip.Addr {
	if s.NATNS != "" {
		return s.ExposedIP
	}
	return s.GuestIP
}

// Gateway is the default route's next hop inside the sandbox.
func (s Sandbox) Gateway() netip.Addr {
	if s.NATNS != "" {
		return GatewayAddr
	}
	return s.HostIP
}

// Manager allocates and builds sandbox networks. Safe for concurrent use.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	pool   netip.Prefix
	nslots int

	// mu guards used, freed and high.
	mu   sync.Mutex
	used map[int]string // slot -> sandbox id
	// Every slot below high is used or in freed (a min-heap, which may
	// also hold slots claimed again since: allocate skips those), so that
	// allocate finds the lowest free slot without walking past every used
	// one.
	freed slotHeap
	high  int

	// denyMu guards denied, watch and hostIPs: what the nft deny set
	// holds now (the operator's list, the pool and the host's addresses,
	// merged), the notifications that say when the host's addresses
	// changed, and the host addresses outside the pool last read.
	denyMu  sync.Mutex
	denied  []netip.Prefix
	watch   *addrWatch
	hostIPs []netip.Addr

	ops opCounters

	// failAfter, if set, runs after every step of Setup and fails the
	// setup when it returns an error (tests inject failures with it).
	failAfter func(step string) error
}

// New checks the configuration, enables forwarding and installs the
// host-wide rules (replacing the base rules of a previous run, keeping the
// per-sandbox ones so that adopted sandboxes keep their network).
func New(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.CIDR == "" {
		cfg.CIDR = DefaultCIDR
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "nbx"
	}
	if cfg.RateBytes == 0 {
		cfg.RateBytes = DefaultRate
	}
	if cfg.BurstBytes == 0 {
		cfg.BurstBytes = DefaultBurst
	}
	if cfg.ConntrackLimit == 0 {
		cfg.ConntrackLimit = DefaultConntrackLimit
	}
	if cfg.ConntrackLimit < 0 {
		return nil, errdefs.Invalid("conntrack limit %d is negative", cfg.ConntrackLimit)
	}
	if cfg.EgressDeny == nil {
		cfg.EgressDeny = egress.DefaultDeny()
	}
	for _, p := range cfg.EgressDeny {
		if !p.IsValid() || !p.Addr().Is4() {
			return nil, errdefs.Invalid("egress deny entry %s: only IPv4 prefixes are supported", p)
		}
	}
	pool, err := netip.ParsePrefix(cfg.CIDR)
	if err != nil || !pool.Addr().Is4() || pool.Bits() > 28 {
		return nil, errdefs.Invalid("network pool %q must be an IPv4 prefix of /28 or larger", cfg.CIDR)
	}
	pool = pool.Masked()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{cfg: cfg, log: log, pool: pool, nslots: 1 << (30 - pool.Bits()), used: map[int]string{}}
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return nil, err
	}
	if err := ensureNetnsMount(netnsDir, log); err != nil {
		return nil, err
	}
	// Sandboxes reach the outside through the host: it must forward.
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return nil, fmt.Errorf("enable ip forwarding: %w", err)
	}
	if err := raiseNeighbourTable(m.nslots, log); err != nil {
		return nil, err
	}
	// Subscribed before the first read, so that a change during it shows.
	m.watch = newAddrWatch(pool)
	m.watch.changed()
	deny, err := m.denyList(true)
	if err != nil {
		m.watch.close()
		return nil, err
	}
	if err := m.installBase(deny); err != nil {
		m.watch.close()
		return nil, err
	}
	m.denied = deny
	return m, nil
}

// denyList is everything a sandbox may never reach: the operator's list,
// the pool (other sandboxes and the host's ends of their links) and every
// address on the host's interfaces, merged into disjoint prefixes. With
// reread it reads the host's addresses now; without, it uses those read
// last (the caller knows from m.watch that they did not change). Call it
// with m.denyMu held, or before m is shared.
func (m *Manager) denyList(reread bool) ([]netip.Prefix, error) {
	if reread {
		// One dump reads every address of the host, the host ends of all
		// running sandboxes included: it costs more with every sandbox,
		// which is why it happens only when m.watch says so.
		host, err := hostAddrs()
		if err != nil {
			return nil, fmt.Errorf("list host addresses: %w", err)
		}
		m.watch.read()
		m.ops.addrDumps.Add(1)
		m.ops.addrsRead.Add(int64(len(host)))
		m.hostIPs = m.hostIPs[:0]
		for _, a := range host {
			if !m.pool.Contains(a) { // the sandboxes' host ends are in the pool already
				m.hostIPs = append(m.hostIPs, a)
			}
		}
	}
	list := append(slices.Clone(m.cfg.EgressDeny), m.pool)
	for _, a := range m.hostIPs {
		list = append(list, netip.PrefixFrom(a, 32))
	}
	return mergePrefixes(list), nil
}

// refreshDeny rewrites the deny set if the host's addresses changed since
// it was written (DHCP, a new interface).
func (m *Manager) refreshDeny() ([]netip.Prefix, error) {
	// Under the lock from the read on: two Setups must not write an older
	// list over a newer one.
	m.denyMu.Lock()
	defer m.denyMu.Unlock()
	deny, err := m.denyList(m.watch.changed())
	if err != nil {
		return nil, err
	}
	if slices.Equal(deny, m.denied) {
		return deny, nil
	}
	if err := m.writeDeny(deny); err != nil {
		return nil, err
	}
	m.denied = deny
	return deny, nil
}

// EgressDeny returns what sandboxes may never reach, as the host's rules
// have it now: the operator's list, the pool and the host's addresses.
func (m *Manager) EgressDeny() []netip.Prefix {
	m.denyMu.Lock()
	defer m.denyMu.Unlock()
	return slices.Clone(m.denied)
}

func (m *Manager) ifPattern() string { return m.cfg.Prefix + "h" }

func (m *Manager) tableName() string { return m.cfg.Prefix + "_" + table }

// slotAddrs returns the host and guest address of a slot.
func (m *Manager) slotAddrs(slot int) (host, guest netip.Addr) {
	base := m.pool.Addr().As4()
	n := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	n += uint32(slot) * 4
	a := func(v uint32) netip.Addr {
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return a(n + 1), a(n + 2)
}

func (m *Manager) allocate(id string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	take := func(slot int) bool {
		m.ops.slotsScanned.Add(1)
		if _, ok := m.used[slot]; ok {
			return false // claimed by Adopt, Reserve or Rebuild
		}
		m.used[slot] = id
		return true
	}
	for m.freed.Len() > 0 {
		if slot := heap.Pop(&m.freed).(int); take(slot) {
			return slot, nil
		}
	}
	for m.high < m.nslots {
		slot := m.high
		m.high++
		if take(slot) {
			return slot, nil
		}
	}
	return 0, errdefs.Unavailable("no free network slot in %s", m.pool)
}

// slotHeap is a min-heap of slots (container/heap).
type slotHeap []int

func (h slotHeap) Len() int           { return len(h) }
func (h slotHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h slotHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *slotHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *slotHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (m *Manager) release(slot int, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.used[slot] == id {
		delete(m.used, slot)
		if slot < m.high {
			heap.Push(&m.freed, slot)
		}
	}
}

// Adopt marks the slot of a sandbox that survived an agent restart as used
// and makes sure the host knows its address (a sandbox set up by an older
// agent has no anti-spoofing entry yet, and would otherwise be cut off).
func (m *Manager) Adopt(sb Sandbox) error {
	m.mu.Lock()
	if owner, ok := m.used[sb.Slot]; ok && owner != sb.ID {
		m.mu.Unlock()
		return errdefs.Conflict("network slot %d is used by %s and %s", sb.Slot, owner, sb.ID)
	}
	m.used[sb.Slot] = sb.ID
	m.mu.Unlock()
	if err := m.addGuest(sb); err != nil {
		m.release(sb.Slot, sb.ID)
		return fmt.Errorf("adopt network of %s: %w", sb.ID, err)
	}
	return nil
}
