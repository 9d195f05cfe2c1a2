// Package agent is the host agent: the one process that owns the sandboxes
// of a machine. It serves the control plane's Connect API (create, destroy,
// get, list, set timeout, metrics, ping), proxies HTTP to every sandbox's
// ports under /proxy/{id}/{port}/, enforces each sandbox's timeout, watches
// for sandboxes that died, and posts lifecycle events to the control plane.
//
// It composes the packages that do the work: template (root filesystems),
// network (netns, veth, nft rules, shaping), rootfs (the copy-on-write
// writable layer) and a driver (gVisor's runsc by default). Each is a
// dependency that Config may replace (Driver, Network, Layers, Templates):
// tests run the agent's own logic over fakes, without root or runsc. Every
// sandbox has a directory <data>/sandboxes/<id> holding a crash-only state
// file: a restarted agent adopts the sandboxes that still run and removes
// every leftover of those that do not. Sandboxes are independent processes
// and outlive the agent.
//
// Imported by cmd/nestbox.
package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/driver/gvisor"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/metrics"
	"nestbox.dev/internal/network"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/rootfs"
	"nestbox.dev/internal/template"
)

// Defaults of Config.
const (
	DefaultRootfsSize = 5 << 30
	DefaultTimeout    = capsulespec.DefaultTimeout
	DefaultVCPUs      = capsulespec.DefaultVCPUs
	DefaultMemoryMB   = capsulespec.DefaultMemoryMB
	// DefaultMemoryOvercommit lets the sandboxes' memory limits add up to
	// 16 times what the host gives them: an idle sandbox uses ~20 MiB of a
	// 512 MiB limit. The MemAvailable check of admission is the guard
	// against memory that is short now.
	DefaultMemoryOvercommit = 16
	// DefaultDiskOvercommit lets the writable layers' sizes (5 GiB each by
	// default) add up to 16 times the free space: a layer holds what the
	// tenant writes, most of them little.
	DefaultDiskOvercommit = 16
	// EnvdPort is where envd listens inside every sandbox.
	EnvdPort = 49983
)

// Config configures an Agent. Zero values mean the documented defaults.
type Config struct {
	// DataDir holds the agent's state: sandboxes/<id> per sandbox,
	// templates/ and runsc/ (runsc's state). Required.
	DataDir string
	// TLSCertFile and TLSKeyFile, if set, make Serve speak HTTPS with
	// that certificate (PEM files), so that the token and the traffic are
	// encrypted across machines; "" serves plain HTTP.
	TLSCertFile, TLSKeyFile string
	// Token is the secret every request but GET /health must present
	// (see authenticate); at least 32 characters. Required: an agent
	// lets whoever reaches it run code as root in every sandbox.
	Token string
	// Driver runs sandboxes; nil means gVisor with Runsc, its state under
	// DataDir/runsc and CgroupParent.
	Driver driver.Driver
	// Network builds the sandboxes' networks; nil means the kernel's
	// (internal/network, configured by NetworkCIDR, NetworkPrefix,
	// EgressDeny and the egress limits below; needs root).
	Network Network
	// Layers makes the sandboxes' writable layers; nil means
	// internal/rootfs (needs root).
	Layers Layers
	// Templates provides the templates' root filesystems; nil means a
	// template store in TemplateDir, which builds them with Envd.
	Templates Templates
	// Runsc is a static runsc binary; required when Driver is nil.
	Runsc string
	// CgroupParent is the cgroup under which gVisor makes one per sandbox;
	// "" means the driver's default (/nestbox).
	CgroupParent string
	// Envd is the static envd binary copied into templates; required to
	// build a template that is not built yet.
	Envd string
	// EgressRateBytes and EgressBurstBytes limit what each sandbox sends,
	// in bytes per second and bytes; zero means 200 MB/s with a 100 MB
	// burst, negative means unlimited.
	EgressRateBytes  int64
	EgressBurstBytes int64
	// TemplateDir holds the templates; "" means DataDir/templates.
	TemplateDir string
	// TemplateCacheDir keeps downloaded packages between template builds;
	// "" means TemplateDir/.cache.
	TemplateCacheDir string
	// Progress receives human-readable progress of template builds; nil
	// discards it.
	Progress io.Writer

	// NetworkCIDR is the private range sandbox addresses come from; ""
	// means network.DefaultCIDR. NetworkPrefix starts the names of this
	// agent's namespaces, links and nft table; "" means "nbx". Two agents
	// on one host need different prefixes and ranges.
	NetworkCIDR   string
	NetworkPrefix string
	// EgressDeny is the operator's egress deny list: destinations no
	// sandbox reaches whatever its options say; nil means
	// egress.DefaultDeny(). The pool and the host's own addresses are
	// always denied as well.
	EgressDeny []netip.Prefix
	// UniqueGuestAddresses gives every new sandbox its own guest address
	// from the pool, as agents before the shared layout did. By default
	// every guest has the same address behind a NAT namespace of its own
	// (network.Config.SharedGuestAddress), so that a checkpoint can be
	// restored as a new sandbox next to the one it was taken from (fork,
	// snapshots). Sandboxes keep the layout they were made with.
	UniqueGuestAddresses bool

	// DefaultRootfsSize is the writable-layer size of a sandbox that asks
	// for none; zero means DefaultRootfsSize. A layer is never smaller than
	// its template.
	DefaultRootfsSize int64
	// DefaultTimeout is the lifetime of a sandbox that asks for none; zero
	// means DefaultTimeout.
	DefaultTimeout time.Duration
	// DefaultVCPUs and DefaultMemoryMB size a sandbox that asks for
	// nothing; zero means DefaultVCPUs and DefaultMemoryMB.
	DefaultVCPUs    int
	DefaultMemoryMB int
	// PidsLimit is each sandbox's host pids limit (gVisor's own threads
	// count: about 1.5 host tasks per process inside, ~25 idle); zero
	// means gvisor.DefaultPidsLimit. All sandboxes together are held under
	// the driver's host-wide cap (gvisor.Config.TotalPidsLimit), so many
	// sandboxes fork-bombing at once cannot starve the host.
	PidsLimit int64
	// MemoryReserveBytes is host memory never given to sandboxes: while
	// MemAvailable is under it, creates are refused. Zero means
	// max(1 GiB, 10% of MemTotal); negative, none.
	MemoryReserveBytes int64
	// MemoryOvercommit is how far the sandboxes' memory limits together may
	// exceed the host's memory less the reserve: an idle gVisor sandbox
	// uses ~20 MiB of its limit, so 1 would leave most of the host idle.
	// Zero means DefaultMemoryOvercommit; 1 means no overcommit, and less
	// than 1 keeps part of the host's memory from sandboxes.
	MemoryOvercommit float64
	// DiskReserveBytes is free space kept on the data dir's file system
	// (which may hold the database too): while less is free, creates are
	// refused. Zero means max(2 GiB, 5%); negative, none.
	DiskReserveBytes int64
	// DiskOvercommit is how far what the sparse writable layers may still
	// grow by together may exceed the free space above the reserve. Zero
	// means DefaultDiskOvercommit; 1 means every layer could fill itself.
	DiskOvercommit float64
	// LogMaxBytes caps each host-side log of a sandbox (its console and
	// runsc's log), checked every MonitorInterval; zero means
	// DefaultLogMaxBytes. Between checks the sandbox's disk limit bounds
	// them: they live on its writable layer.
	LogMaxBytes int64
	// MaxSandboxes caps the sandboxes of this host; zero means only the
	// PIDs, memory and disk bounds.
	MaxSandboxes int
	// Pools are the warm pools this agent keeps (see pool.go); a create
	// that one serves starts in milliseconds. PoolMemoryMB caps the memory
	// limits of all pooled sandboxes together; zero means
	// DefaultPoolMemoryMB, negative no cap but admission's.
	Pools        []PoolSpec
	PoolMemoryMB int
	// MaxSnapshots caps the snapshots this host keeps (CreateSnapshot
	// beyond it is resource_exhausted): each holds a memory image and a
	// layer copy on disk, which the disk reserve bounds too. Zero means
	// DefaultMaxSnapshots; negative, no cap.
	MaxSnapshots int
	// ReadyTimeout bounds the wait for a new (or restored) sandbox's envd
	// to answer; zero means 30 s.
	ReadyTimeout time.Duration
	// RestoreInitTimeout bounds envd's post-restore initialisation, after
	// its readiness; zero means 10 s.
	RestoreInitTimeout time.Duration
	// PauseMemoryGrace is how long a sandbox paused with its memory stays
	// frozen in memory (a resume then takes milliseconds) before it is
	// checkpointed to disk; under memory pressure, or when a create or a
	// resume needs the memory it holds, it goes to disk at once. Zero
	// means DefaultPauseMemoryGrace; negative sends every pause straight
	// to disk.
	PauseMemoryGrace time.Duration

	// EventsURL receives lifecycle events as JSON POSTs (the control
	// plane's /v1/hosts/sandbox-events); "" means events are not sent.
	EventsURL string
	// EventsToken is sent as "Authorization: Bearer <token>" with every
	// event; "" means EventsToken(Token), which a control plane holding
	// the agent token derives too.
	EventsToken string
	// HostID is sent with every event (in the event and as
	// HostIDHeader) and heartbeat; "" omits it.
	HostID string
	// Heartbeat, with a URL, makes the agent report its capacity to a
	// fleet's control plane (see heartbeat.go).
	Heartbeat Heartbeat
	// MonitorInterval is how often running sandboxes are checked for
	// crashes; zero means 2 s.
	MonitorInterval time.Duration
	// SampleInterval is how often running sandboxes' metrics are sampled
	// into their history; zero means DefaultSampleInterval (5 s).
	SampleInterval time.Duration
	// SampleRate bounds the sampling: at most this many sandboxes are
	// read per second, so with more than SampleRate x SampleInterval
	// running each is read less often than every SampleInterval. Zero
	// means DefaultSampleRate.
	SampleRate float64
	// ProbeRate bounds the crash monitor's health probes of envd in the
	// same way: at most this many per second, so with more than
	// ProbeRate x MonitorInterval running a crash is found later than
	// within MonitorInterval. Zero means DefaultProbeRate.
	ProbeRate float64

	Logger *slog.Logger
	// Metrics is the process's registry (metrics.NewRegistry): the
	// agent's metrics are registered on it and GET /metrics serves it.
	// nil makes one for this agent. One agent per registry: a second
	// one's New fails on the duplicate names.
	Metrics *prometheus.Registry

	// failAt, if set, runs after every step of a create, a pause and a
	// resume and fails the operation when it returns an error (tests
	// inject failures with it).
	failAt func(step string) error
	// forkConcurrency is how many forks of one call are restored at once;
	// zero means defaultForkConcurrency (benchmarks compare).
	forkConcurrency int
	// ttlTick is how often timeouts are checked; zero means 200 ms.
	ttlTick time.Duration
	// meminfo, if set, replaces the read of /proc/meminfo (tests make
	// memory pressure with it).
	meminfo func() (map[string]uint64, error)
}

// Agent owns the sandboxes of this machine. Create it with New, run its
// background work with Run, serve its API with Serve or Handler. Its methods
// are safe for concurrent use.
type Agent struct {
	cfg       Config
	log       *slog.Logger
	driver    driver.Driver
	net       Network
	layers    Layers
	templates Templates
	envd      *envdClient
	events    *eventQueue
	// registry is Config.Metrics; prom are the agent's metrics on it.
	registry *prometheus.Registry
	prom     *agentMetrics
	pools    *pools
	// ops holds the changing RPCs in flight for a graceful stop (stop.go).
	ops opGate

	// snapMu decides who may read or remove a snapshot's files (see
	// snapshots.go): restores copying from one hold it to read; the
	// commit of a CreateSnapshot and DeleteSnapshot, to write. Never
	// taken with mu held.
	snapMu sync.RWMutex

	// mu guards sandboxes, snapPending and the fields of each sandbox
	// documented as guarded by Agent.mu.
	mu        sync.Mutex
	sandboxes map[string]*sandbox
	// snapPending holds the IDs of the snapshots CreateSnapshot calls
	// are making, not yet in place.
	snapPending map[string]bool

	// layerStats counts the stats of writable layers' images (admission
	// and the metrics sampler), for opCounts.
	layerStats atomic.Int64
}

// sandbox is the agent's record of one sandbox.
type sandbox struct {
	id string
	// rid names the sandbox to the runtime: its driver container, its
	// network and its directory. It is id for every sandbox but one taken
	// from a warm pool, whose runtime started before it had an ID (see
	// pool.go). Neither changes in a sandbox's life.
	rid string
	dir string
	log *slog.Logger

	// op serialises lifecycle operations on this sandbox: create, destroy
	// and state-file updates. Whoever holds it re-checks gone first.
	op sync.Mutex
	// netReleased, guarded by op, records that the network was torn down:
	// its slot may belong to another sandbox already.
	netReleased bool
	// pooled marks a warm pool's sandbox (made by the fill loop or adopted
	// as one): get, list and lookup never show it. Set when the record is
	// made; a claim moves the sandbox to a new record.
	pooled bool

	// Set while the sandbox is created (under op, before status becomes
	// running) or adopted, read-only afterwards.
	cfg         *agentpb.SandboxConfig
	tplPath     string
	envdVersion string
	net         network.Sandbox
	layer       rootfs.Layer
	startedAt   time.Time
	proxy       *sandboxProxy

	// Guarded by Agent.mu.
	status    status
	endAt     time.Time
	gone      bool         // removed from Agent.sandboxes
	ready     bool         // pooled and recorded as such: a claim may take it
	lastStats driver.Stats // previous metrics sample, for CPU %
	probedAt  time.Time    // last health probe of the crash monitor
	samples   sampleRing   // metrics history, dropped with the sandbox
	// allocated is what the writable layer's image allocatedOf held on
	// disk when last looked at (admission, the metrics sampler);
	// allocatedOf is "" if never.
	allocated   uint64
	allocatedOf string
	// Set while paused (statusPaused, or statusResuming/statusError after
	// it): when, in which tier, whether without memory. errMsg says why a
	// sandbox is in statusError.
	pausedAt  time.Time
	pauseTier string
	fsOnly    bool
	errMsg    string
	// In the memory tier: when the demotion to disk is due, and whether
	// one is picked already.
	demoteAt time.Time
	demoting bool
}

// status is where a sandbox is in its life, as the agent sees it.
type status string

const (
	statusCreating status = "creating"
	statusRunning  status = "running"
	statusStopping status = "stopping"
	// statusPausing: a pause runs; the sandbox still runs until its
	// checkpoint. statusPaused: in the disk tier its runtime is gone, its
	// snapshot (or only its disk) and its network slot are kept; in the
	// memory tier it is frozen with its runtime and network. statusResuming: a
	// resume runs. statusError: its files are kept but it cannot run (a
	// snapshot that failed its checksum); only a destroy applies.
	statusPausing  status = "pausing"
	statusPaused   status = "paused"
	statusResuming status = "resuming"
	statusError    status = "error"
	// statusPooled: a warm pool's sandbox, running and idle, which no
	// control plane knows (see pool.go).
	statusPooled status = "pooled"
)

// Pause tiers, as Sandbox.pause_tier reports them.
const (
	tierMemory = "memory"
	tierDisk   = "disk"
)

// New checks cfg, prepares the driver, network and template store, and
// recovers the sandboxes of a previous run from their state files: the ones
// still running are adopted, the leftovers of the others removed. ctx bounds
// this setup only.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.DataDir == "" || !filepath.IsAbs(cfg.DataDir) {
		return nil, errdefs.Invalid("agent: data dir must be an absolute path, got %q", cfg.DataDir)
	}
	if err := CheckToken(cfg.Token); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if cfg.EventsToken == "" {
		cfg.EventsToken = EventsToken(cfg.Token)
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return nil, errdefs.Invalid("agent: a TLS certificate needs its key, and a key its certificate")
	}
	if cfg.DefaultRootfsSize == 0 {
		cfg.DefaultRootfsSize = DefaultRootfsSize
	}
	if cfg.DefaultTimeout == 0 {
		cfg.DefaultTimeout = DefaultTimeout
	}
	if cfg.DefaultVCPUs == 0 {
		cfg.DefaultVCPUs = DefaultVCPUs
	}
	if cfg.DefaultMemoryMB == 0 {
		cfg.DefaultMemoryMB = DefaultMemoryMB
	}
	if cfg.MemoryOvercommit == 0 {
		cfg.MemoryOvercommit = DefaultMemoryOvercommit
	}
	if cfg.DiskOvercommit == 0 {
		cfg.DiskOvercommit = DefaultDiskOvercommit
	}
	if cfg.MemoryOvercommit < 0 || cfg.DiskOvercommit < 0 {
		return nil, errdefs.Invalid("overcommit ratios must be positive")
	}
	if cfg.PidsLimit == 0 {
		cfg.PidsLimit = gvisor.DefaultPidsLimit
	}
	if cfg.LogMaxBytes == 0 {
		cfg.LogMaxBytes = DefaultLogMaxBytes
	}
	if cfg.MaxSnapshots == 0 {
		cfg.MaxSnapshots = DefaultMaxSnapshots
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	if cfg.RestoreInitTimeout == 0 {
		cfg.RestoreInitTimeout = 10 * time.Second
	}
	if cfg.MonitorInterval == 0 {
		cfg.MonitorInterval = 2 * time.Second
	}
	switch {
	case cfg.PauseMemoryGrace == 0:
		cfg.PauseMemoryGrace = DefaultPauseMemoryGrace
	case cfg.PauseMemoryGrace < 0:
		cfg.PauseMemoryGrace = 0
	}
	if cfg.ttlTick == 0 {
		cfg.ttlTick = 200 * time.Millisecond
	}
	if cfg.TemplateDir == "" {
		cfg.TemplateDir = filepath.Join(cfg.DataDir, "templates")
	}
	if err := checkPools(cfg.Pools); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.HostID != "" {
		// Every line of this agent names its host (a sandbox's lines
		// add sandbox=<the capsule's ID>).
		log = log.With("host", cfg.HostID)
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "sandboxes"), 0o700); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if _, err := raiseOpenFiles(log); err != nil {
		log.Warn("open files limit", "err", err)
	}
	a := &Agent{
		cfg:         cfg,
		log:         log,
		driver:      cfg.Driver,
		net:         cfg.Network,
		layers:      cfg.Layers,
		templates:   cfg.Templates,
		events:      newEventQueue(cfg.EventsURL, cfg.EventsToken, cfg.HostID, log),
		sandboxes:   map[string]*sandbox{},
		snapPending: map[string]bool{},
		registry:    cfg.Metrics,
		pools:       newPools(cfg),
	}
	if a.registry == nil {
		a.registry = metrics.NewRegistry()
	}
	var err error
	if a.prom, err = newAgentMetrics(a.registry, a); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.loadSnapshotPools()
	if want := a.pools.memoryWanted(); a.pools.budget > 0 && want > a.pools.budget {
		log.Warn("the warm pools want more memory than their budget: they stay short of their sizes (raise --pool-memory-mb)",
			"pools_mib", want>>20, "budget_mib", a.pools.budget>>20)
	}
	if a.driver == nil {
		d, err := gvisor.New(gvisor.Config{
			Runsc:        cfg.Runsc,
			Root:         filepath.Join(cfg.DataDir, "runsc"),
			CgroupParent: cfg.CgroupParent,
			PidsLimit:    cfg.PidsLimit,
			Logger:       log,
		})
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		a.driver = d
	}
	if a.templates == nil {
		store, err := template.New(template.Config{Dir: cfg.TemplateDir, CacheDir: cfg.TemplateCacheDir, Envd: cfg.Envd, Progress: cfg.Progress, Logger: log,
			InUse: a.templatesHeld})
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		a.templates = store
	}
	if a.net == nil {
		m, err := network.New(ctx, network.Config{CIDR: cfg.NetworkCIDR, Prefix: cfg.NetworkPrefix,
			RateBytes: cfg.EgressRateBytes, BurstBytes: cfg.EgressBurstBytes, EgressDeny: cfg.EgressDeny, Logger: log,
			SharedGuestAddress: !cfg.UniqueGuestAddresses})
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		a.net = kernelNetwork{m}
	}
	if a.layers == nil {
		a.layers = overlayLayers{}
	}
	a.envd = newEnvdClient(a.net.DialControl)
	if err := a.recover(ctx); err != nil {
		return nil, fmt.Errorf("agent: recover sandboxes: %w", err)
	}
	return a, nil
}

// Run does the agent's background work until ctx is done: it enforces
// timeouts, detects crashed sandboxes, samples metrics and delivers events. Call it once. It
// returns once all of that work, including destroys it started, has
// finished. Sandboxes keep running after Run returns; without Run, nothing
// times out and no event is sent.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { a.events.run(ctx) })
	wg.Go(func() { a.enforceTimeouts(ctx, &wg) })
	wg.Go(func() { a.monitor(ctx, &wg) })
	wg.Go(func() { a.demoteSweep(ctx, &wg) })
	wg.Go(func() { a.sampleMetrics(ctx, a.cfg.SampleInterval) })
	wg.Go(func() { a.fillPools(ctx) })
	if a.cfg.Heartbeat.URL != "" {
		wg.Go(func() { a.heartbeat(ctx) })
	}
	wg.Wait()
	return nil
}

func (a *Agent) sandboxesDir() string { return filepath.Join(a.cfg.DataDir, "sandboxes") }

// lookup returns the registered sandbox id, or nil. A pooled sandbox is
// no one's to look up.
func (a *Agent) lookup(id string) *sandbox {
	a.mu.Lock()
	defer a.mu.Unlock()
	if sb := a.sandboxes[id]; sb != nil && !sb.pooled {
		return sb
	}
	return nil
}

// running returns sandbox id if it is running, else an ErrNotFound.
func (a *Agent) running(id string) (*sandbox, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	sb := a.sandboxes[id]
	if sb == nil || sb.status != statusRunning {
		return nil, errdefs.NotFound("sandbox %s not found", id)
	}
	return sb, nil
}

// get returns sandbox id unless it is unknown, being created or being
// removed: GetSandbox reports running, paused (and pausing or resuming)
// and error sandboxes.
func (a *Agent) get(id string) (*sandbox, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	sb := a.sandboxes[id]
	if sb == nil || sb.pooled || sb.status == statusCreating || sb.status == statusStopping {
		return nil, errdefs.NotFound("sandbox %s not found", id)
	}
	return sb, nil
}

// forget removes sb from the table. Called with sb.op held, so no other
// lifecycle operation of sb runs; the identity check keeps a newer sandbox
// with the same id in place.
func (a *Agent) forget(sb *sandbox) {
	a.mu.Lock()
	if a.sandboxes[sb.id] == sb {
		delete(a.sandboxes, sb.id)
	}
	sb.gone = true
	a.mu.Unlock()
	if sb.proxy != nil {
		sb.proxy.close()
	}
}

// allRunning returns the sandboxes whose status is running, at one instant.
// dialAddr is the address the agent reaches sb at (its own address on
// the host's side of its network), read under a.mu: a resume rebuilds
// sb.net while the monitor, the proxy and the API may read it.
func (a *Agent) dialAddr(sb *sandbox) netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return sb.net.Addr()
}

func (a *Agent) allRunning() []*sandbox {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*sandbox
	for _, sb := range a.sandboxes {
		if sb.status == statusRunning {
			out = append(out, sb)
		}
	}
	return out
}

// listed returns the sandboxes that get finds, at one instant.
func (a *Agent) listed() []*sandbox {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*sandbox
	for _, sb := range a.sandboxes {
		if !sb.pooled && sb.status != statusCreating && sb.status != statusStopping {
			out = append(out, sb)
		}
	}
	return out
}

// list describes the sandboxes that get finds: running, paused and error.
func (a *Agent) list() []*agentpb.Sandbox {
	listed := a.listed()
	out := make([]*agentpb.Sandbox, 0, len(listed))
	for _, sb := range listed {
		out = append(out, a.toProto(sb))
	}
	slices.SortFunc(out, func(x, y *agentpb.Sandbox) int { return strings.Compare(x.Id, y.Id) })
	return out
}
