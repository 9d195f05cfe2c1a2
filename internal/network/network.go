// Package network gives each sandbox its own network namespace on the host:
// a veth pair whose host end is the sandbox's only way out, an address pair
// from a slot allocator over a private range, NAT to the outside when the
// sandbox may use the internet, per-sandbox egress allow and deny lists, an
// egress rate limit, and rules that keep sandboxes away from each other and
// from every port of the host itself. It drives the kernel through the `ip`,
// `nft` and `tc` commands.
//
// Imported by the host agent.
package network

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"

	"nestbox.dev/internal/errdefs"
)

// Defaults.
const (
	DefaultCIDR = "10.200.0.0/16"
	// DefaultRate and DefaultBurst bound a sandbox's outbound traffic:
	// 200 MB/s sustained with a 100 MB burst.
	DefaultRate  = 200 << 20
	DefaultBurst = 100 << 20
	netnsDir     = "/var/run/netns"
	table        = "nestbox"
)

// Config configures a Manager. Zero values mean the documented defaults.
type Config struct {
	// CIDR is the pool sandbox addresses come from; each sandbox takes a
	// /30 of it (host end .1, sandbox .2). "" means DefaultCIDR.
	CIDR string
	// Prefix starts every name this manager creates (namespaces, links,
	// nft chains); "" means "nbx". Two managers on one host need different
	// prefixes and pools.
	Prefix string
	// RateBytes and BurstBytes limit each sandbox's egress; zero means the
	// defaults, negative means unlimited.
	RateBytes  int64
	BurstBytes int64
	Logger     *slog.Logger
}

// Options are one sandbox's network settings.
type Options struct {
	// Internet lets the sandbox open connections beyond the host (NATed).
	Internet bool
	// AllowOut and DenyOut are destination prefixes. Allow wins over
	// deny; deny wins over Internet. Private and link-local ranges are
	// denied unless allowed.
	AllowOut []netip.Prefix
	DenyOut  []netip.Prefix
}

// Sandbox is the network of one sandbox. It is plain data so that the
// agent can keep it in the sandbox's state file and adopt it after a restart.
type Sandbox struct {
	ID      string     `json:"id"`
	Slot    int        `json:"slot"`
	NetNS   string     `json:"netns"` // path
	HostIf  string     `json:"host_if"`
	HostIP  netip.Addr `json:"host_ip"`
	GuestIP netip.Addr `json:"guest_ip"`
	Bits    int        `json:"bits"`
}

// GuestPrefix is the sandbox's address with its prefix length.
func (s Sandbox) GuestPrefix() netip.Prefix { return netip.PrefixFrom(s.GuestIP, s.Bits) }

// Manager allocates and builds sandbox networks. Safe for concurrent use.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	pool   netip.Prefix
	nslots int

	// mu guards used.
	mu   sync.Mutex
	used map[int]string // slot -> sandbox id
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
	pool, err := netip.ParsePrefix(cfg.CIDR)
	if err != nil || !pool.Addr().Is4() || pool.Bits() > 28 {
		return nil, errdefs.Invalid("network pool %q must be an IPv4 prefix of /28 or larger", cfg.CIDR)
	}
	pool = pool.Masked()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, tool := range []string{"ip", "nft", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("network: %s is not installed: %w", tool, err)
		}
	}
	m := &Manager{cfg: cfg, log: log, pool: pool, nslots: 1 << (30 - pool.Bits()), used: map[int]string{}}
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return nil, err
	}
	// Sandboxes reach the outside through the host: it must forward.
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return nil, fmt.Errorf("enable ip forwarding: %w", err)
	}
	if err := m.installBase(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manager) ifPattern() string { return m.cfg.Prefix + "h*" }

// installBase writes the host-wide rules in one atomic nft transaction.
func (m *Manager) installBase(ctx context.Context) error {
	t := m.tableName()
	hostIfs := m.ifPattern()
	script := fmt.Sprintf(`
table inet %[1]s {
  map egress { type ifname : verdict; }
  chain forward { type filter hook forward priority filter; policy accept; }
  chain input { type filter hook input priority filter; policy accept; }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept; }
}
flush chain inet %[1]s forward
flush chain inet %[1]s input
flush chain inet %[1]s postrouting
add rule inet %[1]s forward iifname "%[2]s" oifname "%[2]s" drop
add rule inet %[1]s forward oifname "%[2]s" ct state established,related accept
add rule inet %[1]s forward oifname "%[2]s" drop
add rule inet %[1]s forward iifname vmap @egress
add rule inet %[1]s forward iifname "%[2]s" drop
add rule inet %[1]s input iifname "%[2]s" ct state established,related accept
add rule inet %[1]s input iifname "%[2]s" drop
add rule inet %[1]s postrouting ip saddr %[3]s oifname != "%[2]s" masquerade
`, t, hostIfs, m.pool)
	if err := nft(ctx, script); err != nil {
		return fmt.Errorf("install host rules: %w", err)
	}
	return nil
}

func (m *Manager) tableName() string { return m.cfg.Prefix + "_" + table }

// Close removes the host-wide rules. Call it only when no sandbox of this
// manager runs any more (tests, uninstall); an agent that restarts keeps them.
func (m *Manager) Close(ctx context.Context) error {
	return nft(ctx, fmt.Sprintf("delete table inet %s\n", m.tableName()))
}

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
	for slot := 0; slot < m.nslots; slot++ {
		if _, ok := m.used[slot]; !ok {
			m.used[slot] = id
			return slot, nil
		}
	}
	return 0, errdefs.Unavailable("no free network slot in %s", m.pool)
}

func (m *Manager) release(slot int, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.used[slot] == id {
		delete(m.used, slot)
	}
}

// Adopt marks the slot of a sandbox that survived an agent restart as used.
func (m *Manager) Adopt(sb Sandbox) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if owner, ok := m.used[sb.Slot]; ok && owner != sb.ID {
		return errdefs.Conflict("network slot %d is used by %s and %s", sb.Slot, owner, sb.ID)
	}
	m.used[sb.Slot] = sb.ID
	return nil
}

// run runs a command and returns its error with stderr.
func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// nft runs an nft script as one transaction.
func nft(ctx context.Context, script string) error {
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
