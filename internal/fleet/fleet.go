// Package fleet is the control plane's view of a fleet of hosts: join
// tokens, registration, heartbeats, the host monitor, and the scheduler
// that picks a host for each new capsule. Its Registry is the
// lifecycle.Hosts of a control plane that serves a fleet
// (controlplane.SingleHost serves one machine). Any number of control
// planes may share one store: the hosts, their capacity and the tokens
// live there, each Registry caches them for a second, and the monitor
// runs under a lease so that one control plane judges heartbeats at a
// time.
//
// Imported by internal/controlplane and internal/server.
package fleet

import (
	"context"
	"crypto/rand"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/store"
)

// Defaults of Config.
const (
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultSample            = 2
	DefaultMaxJoinTokens     = 100
	DefaultMaxHosts          = 1000
	DefaultJoinTokenTTL      = 24 * time.Hour
	// MaxJoinTokenTTL bounds how long a join token may be valid.
	MaxJoinTokenTTL = 30 * 24 * time.Hour
	// MaxJoinTokenUses bounds the registrations one token allows.
	MaxJoinTokenUses = 1000
	// refreshEvery is how long the cached host list is trusted.
	refreshEvery = time.Second
)

// Config configures a Registry. Store and Connect are required.
type Config struct {
	Store store.Store
	// Connect makes the lifecycle.Host through which the control plane
	// drives the agent at url with its token (controlplane.HostClient).
	Connect func(id, url, token string) lifecycle.Host
	Logger  *slog.Logger

	// HeartbeatInterval is how often agents are told to heartbeat; zero
	// means 5 s. A host is unreachable after UnreachableAfter without a
	// heartbeat; zero means three intervals.
	HeartbeatInterval time.Duration
	UnreachableAfter  time.Duration
	// Sample is how many candidate hosts a placement compares (the best
	// of K sampled at random); zero means 2.
	Sample int
	// MaxJoinTokens bounds the usable join tokens at once, MaxHosts the
	// registered hosts; zero means 100 and 1000.
	MaxJoinTokens int
	MaxHosts      int
	// Holder names this control plane in leases; "" means a random name.
	Holder string
	// Watcher is told of hosts that go silent and come back (the
	// lifecycle); nil until SetWatcher.
	Watcher HostWatcher
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// HostWatcher is told of the hosts the monitor finds unreachable (it
// marks their capsules missing) and of the heartbeats of hosts that were
// (it reconciles them at once). lifecycle.Service is one.
type HostWatcher interface {
	HostUnreachable(ctx context.Context, hostID string) error
	ReconcileHostSoon(hostID string)
}

// Registry knows the fleet's hosts. It is safe for concurrent use.
type Registry struct {
	cfg Config
	log *slog.Logger

	// mu guards the cached hosts, their clients and the placements made
	// since each host's last heartbeat was read.
	mu       sync.Mutex
	hosts    []store.Host
	loadedAt time.Time
	clients  map[string]client
	placed   map[string]placement
	rnd      *mrand.Rand
	watcher  HostWatcher

	// storeDown and storeBack belong to the monitor (Run's goroutine):
	// whether its last pass could not reach the store, and when a pass
	// reached it again after one that could not.
	storeDown bool
	storeBack time.Time
}

// SetWatcher sets the HostWatcher (the lifecycle is made after the
// Registry it schedules on).
func (r *Registry) SetWatcher(w HostWatcher) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watcher = w
}

func (r *Registry) hostWatcher() HostWatcher {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.watcher
}

// client is the lifecycle.Host of one host, made for one address and
// token (a host that re-registers elsewhere gets a new one).
type client struct {
	url, token string
	host       lifecycle.Host
}

// placement is what this control plane placed on a host since the
// heartbeat at seen: capacity the host's report does not show yet.
type placement struct {
	seen   time.Time
	memory uint64
	vcpus  uint32
	count  uint32
}

// New returns a Registry over cfg.Store.
func New(cfg Config) *Registry {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.UnreachableAfter <= 0 {
		cfg.UnreachableAfter = 3 * cfg.HeartbeatInterval
	}
	if cfg.Sample <= 0 {
		cfg.Sample = DefaultSample
	}
	if cfg.MaxJoinTokens <= 0 {
		cfg.MaxJoinTokens = DefaultMaxJoinTokens
	}
	if cfg.MaxHosts <= 0 {
		cfg.MaxHosts = DefaultMaxHosts
	}
	if cfg.Holder == "" {
		cfg.Holder = "cp-" + rand.Text()[:12]
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var seed [32]byte
	copy(seed[:], rand.Text())
	return &Registry{cfg: cfg, log: log, clients: map[string]client{}, placed: map[string]placement{},
		rnd: mrand.New(mrand.NewChaCha8(seed)), watcher: cfg.Watcher}
}

// HeartbeatInterval is how often agents are told to heartbeat.
func (r *Registry) HeartbeatInterval() time.Duration { return r.cfg.HeartbeatInterval }

// snapshot returns the hosts, read from the store if the cache is older
// than refreshEvery. On a store error the last list is kept.
func (r *Registry) snapshot(ctx context.Context) []store.Host {
	r.mu.Lock()
	fresh := r.loadedAt.After(r.cfg.Now().Add(-refreshEvery))
	hs := r.hosts
	r.mu.Unlock()
	if fresh {
		return hs
	}
	return r.reload(ctx)
}

// reload reads the hosts from the store now.
func (r *Registry) reload(ctx context.Context) []store.Host {
	hs, err := r.cfg.Store.ListHosts(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.log.Warn("list hosts", "err", err)
		return r.hosts
	}
	r.hosts, r.loadedAt = hs, r.cfg.Now()
	return hs
}

// hostOf returns the lifecycle.Host of h, made once per address and token.
// The caller holds r.mu.
func (r *Registry) hostOf(h store.Host) lifecycle.Host {
	c, ok := r.clients[h.ID]
	if !ok || c.url != h.Address || c.token != h.AgentToken {
		c = client{url: h.Address, token: h.AgentToken, host: r.cfg.Connect(h.ID, h.Address, h.AgentToken)}
		r.clients[h.ID] = c
	}
	return c.host
}

// Get returns the host with id, reachable or not: its capsules' traffic
// goes there.
func (r *Registry) Get(id string) (lifecycle.Host, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, fresh := range []bool{false, true} {
		hs := r.snapshot(ctx)
		if fresh {
			// A host registered a moment ago through another control
			// plane is not in the cache yet.
			hs = r.reload(ctx)
		}
		for _, h := range hs {
			if h.ID == id {
				r.mu.Lock()
				defer r.mu.Unlock()
				return r.hostOf(h), nil
			}
		}
	}
	return lifecycle.Host{}, notFound(id)
}

// All lists every registered host, for the reconciler.
func (r *Registry) All() []lifecycle.Host {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hs := r.snapshot(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]lifecycle.Host, 0, len(hs))
	for _, h := range hs {
		out = append(out, r.hostOf(h))
	}
	return out
}
