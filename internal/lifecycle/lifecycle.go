// Package lifecycle is the control plane's capsule lifecycle: it validates a
// request, records the capsule, answers at once, and drives the host agent
// in the background under its own context. Every status change is a
// compare-and-set in the store followed by an event on the stream; waiters
// block on those events. A reconciler compares the store with what the
// agents really run and repairs the difference.
//
// The HTTP layer (internal/server) is its only caller; it owns no HTTP.
package lifecycle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/egress"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/events"
	"nestbox.dev/internal/metrics"
	"nestbox.dev/internal/proto/agentpb/agentpbconnect"
	"nestbox.dev/internal/store"
)

// Defaults of Config.
const (
	DefaultTemplate          = capsulespec.DefaultTemplate
	DefaultVCPUs             = capsulespec.DefaultVCPUs
	DefaultMemoryMB          = capsulespec.DefaultMemoryMB
	DefaultTimeout           = capsulespec.DefaultTimeout
	DefaultReconcileInterval = 60 * time.Second
	DefaultStuckAfter        = 10 * time.Minute
	DefaultTouchInterval     = 10 * time.Second
	DefaultCreateTimeout     = 10 * time.Minute
	DefaultAutoResumeWait    = 2 * time.Minute
	DefaultMissingAfter      = 3

	// DefaultMaxLifetime is how long a capsule may live from its creation,
	// however often its timeout is extended.
	DefaultMaxLifetime = 24 * time.Hour
	// Per-capsule maxima. A host refuses more vCPUs than its cores too.
	DefaultMaxVCPUs    = capsulespec.MaxVCPUs
	DefaultMaxMemoryMB = 8 << 10
	DefaultMaxDiskMB   = 20 << 10

	// Per-team defaults, sized for one small machine: what a team may hold
	// at once in capsules that are not stopped or in error.
	DefaultTeamCapsules = 20
	DefaultTeamVCPUs    = 20
	DefaultTeamMemoryMB = 16 << 10
	// DefaultTeamSnapshots is how many snapshots a team may keep.
	DefaultTeamSnapshots = 20
	// DefaultTeamPooled is how many sandboxes the warm pools of a team's
	// templates may keep ready together: each holds its memory limit on
	// its host while it waits.
	DefaultTeamPooled = 4
	// DefaultTeamDiskMB is the disk a team's live capsules and snapshots
	// may take together: 20 capsules of a 5 GiB writable layer.
	DefaultTeamDiskMB = 100 << 10
)

// Host is a machine with a host agent.
type Host struct {
	ID    string
	Agent agentpbconnect.AgentClient
	// ProxyURL is the base URL of the agent's /proxy/ (e.g.
	// http://127.0.0.1:5007): envd and ports of the host's capsules are
	// reached under ProxyURL/proxy/{id}/{port}/.
	ProxyURL string
	// Authorize wraps a transport to ProxyURL so that its requests carry
	// the agent's credential; nil means none is needed. Agent is
	// authorized already.
	Authorize func(http.RoundTripper) http.RoundTripper
}

// Transport returns rt wrapped by h.Authorize: the transport for requests
// to h's ProxyURL.
func (h Host) Transport(rt http.RoundTripper) http.RoundTripper {
	if h.Authorize == nil {
		return rt
	}
	return h.Authorize(rt)
}

// Hosts knows the hosts capsules can run on.
type Hosts interface {
	// Pick chooses the host for a new capsule. It may ask the hosts'
	// agents; ctx carries the deadline of an agent query (callQuery).
	Pick(ctx context.Context, req nestbox.CreateCapsuleRequest) (Host, error)
	// Get returns a host by ID; an unknown ID is errdefs.ErrNotFound.
	Get(id string) (Host, error)
	// All lists every host, for the reconciler.
	All() []Host
}

// Config configures a Service. Store, Events and Hosts are required; zero
// values of the rest mean the documented defaults.
type Config struct {
	Store  store.Store
	Events events.Stream
	Hosts  Hosts
	Logger *slog.Logger

	// DefaultTemplate is the template of a request that names none; ""
	// means DefaultTemplate.
	DefaultTemplate string
	// ReconcileInterval is how often Run reconciles; zero means 60 s.
	ReconcileInterval time.Duration
	// StuckAfter is how long a capsule may sit in a transient status with
	// no work in flight before the reconciler resolves it; zero means 10
	// minutes.
	StuckAfter time.Duration
	// CreateTimeout bounds one create on a host; zero means 10 minutes
	// (a first create may build its template).
	CreateTimeout time.Duration
	// QueryTimeout bounds a call a host agent answers from memory (list,
	// get, templates, ping, metrics, set timeout); zero means 10 s.
	QueryTimeout time.Duration
	// DestroyTimeout bounds one destroy on a host; zero means 2 minutes.
	DestroyTimeout time.Duration
	// PauseTimeout and ResumeTimeout bound one pause or resume on a
	// host; zero means 5 minutes each (a multi-GiB memory image).
	PauseTimeout  time.Duration
	ResumeTimeout time.Duration
	// MissingAfter is how many reconcile passes in a row a host may fail
	// to answer before its running and paused capsules become
	// StatusMissing; zero means 3.
	MissingAfter int
	// AutoResumeWait bounds how long a request routed to a paused
	// capsule with auto-resume waits for the resume; zero means 2
	// minutes.
	AutoResumeWait time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Holder, if not "", names this control plane among several that
	// share the store: Run's periodic reconcile then runs only on the one
	// holding the "reconcile" lease (store.AcquireLease), for two
	// intervals at a time, renewed at each pass. "" reconciles every
	// interval (one control plane).
	//
	// With a Holder, Run also touches the capsules this Service is
	// driving every TouchInterval (zero means 10 s), and a transient
	// status untouched for three intervals is stuck whoever set it: the
	// replica driving it is gone (a stopped or killed control plane), so
	// the reconcile resolves it in minutes, not after StuckAfter.
	Holder        string
	TouchInterval time.Duration
	// EventClaimIdle is how long an event the fallback writer of one
	// control plane took, and did not apply, waits before another (or
	// the same) takes it over (events.GroupConfig.ClaimIdle); zero means
	// events.DefaultClaimIdle. The fallback writer's consumer in the
	// group is named Holder (a random name without one).
	EventClaimIdle time.Duration
	// Metrics is the registry the lifecycle's metrics are registered on
	// (operation durations, reconcile results, event-stream lag, and
	// nestbox_capsules, read from the store at each scrape); nil
	// registers them nowhere. One Service per registry: a second one's
	// New fails on the duplicate names.
	Metrics prometheus.Registerer

	// Limits are the operator's limits on what tenants may ask for.
	Limits
}

// Limits are the operator's limits on tenants' capsules; the zero value of
// each field is its documented default.
type Limits struct {
	// EgressDeny is the operator's egress deny list: a create whose
	// allow_out overlaps it is refused. nil means egress.DefaultDeny().
	EgressDeny []netip.Prefix

	// Limits of one capsule. MaxVCPUs zero means DefaultMaxVCPUs (the
	// host set refuses more vCPUs than the picked host has cores, which it
	// alone knows); MaxMemoryMB zero means DefaultMaxMemoryMB, MaxDiskMB
	// zero DefaultMaxDiskMB.
	MaxVCPUs    int
	MaxMemoryMB int
	MaxDiskMB   int
	// MaxLifetime caps a capsule's life from its creation: neither the
	// create's timeout nor SetTimeout can take it past CreatedAt +
	// MaxLifetime. Zero means DefaultMaxLifetime; the operator raises it
	// to allow more.
	MaxLifetime time.Duration

	// TeamQuota is what a team may hold at once in live capsules and
	// snapshots, unless the store has the team's own limits (which
	// override it field by field). A zero field means its DefaultTeam*
	// value, a negative one no limit.
	TeamQuota store.Quota
	// TeamPooled caps the sandboxes the warm pools of a team's templates
	// (made from snapshots) keep together; zero means DefaultTeamPooled,
	// negative no pools at all.
	TeamPooled int
}

// Service drives capsules through their lifecycle. Create it with New,
// start its background work with Run, stop it with Close. Its methods are
// safe for concurrent use.
type Service struct {
	cfg   Config
	log   *slog.Logger
	store store.Store
	ev    events.Stream
	hosts Hosts

	// ctx is the parent of all background work; cancel stops it. It is not
	// tied to any request: a capsule outlives the call that created it.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup

	// mu guards inflight (capsule IDs with a create, destroy, pause or
	// resume running in this process, which the reconciler leaves alone)
	// and silent (reconcile passes in a row each host did not answer).
	mu       sync.Mutex
	inflight map[string]int
	silent   map[string]int

	// started is when this Service was made: a capsule whose transient
	// status was set before it has no work in flight here (the process
	// that started the work is gone), so the reconciler resolves it at
	// once instead of after StuckAfter.
	started time.Time

	// offered caches the templates the hosts offer, for checkTemplate.
	offered templateCache

	// snapMu guards snapWaits: the snapshots this process is creating,
	// by ID, each closed with its outcome (see WaitSnapshot).
	snapMu    sync.Mutex
	snapWaits map[string]*snapshotWait

	// metrics measures the background work.
	metrics *lifeMetrics
}

// New returns a Service. Its background work starts with Run.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Events == nil || cfg.Hosts == nil {
		return nil, errors.New("lifecycle: Store, Events and Hosts are required")
	}
	if cfg.DefaultTemplate == "" {
		cfg.DefaultTemplate = DefaultTemplate
	}
	if cfg.ReconcileInterval == 0 {
		cfg.ReconcileInterval = DefaultReconcileInterval
	}
	if cfg.TouchInterval == 0 {
		cfg.TouchInterval = DefaultTouchInterval
	}
	if cfg.StuckAfter == 0 {
		cfg.StuckAfter = DefaultStuckAfter
	}
	if cfg.CreateTimeout == 0 {
		cfg.CreateTimeout = DefaultCreateTimeout
	}
	cfg.QueryTimeout = cmp.Or(cfg.QueryTimeout, DefaultQueryTimeout)
	cfg.DestroyTimeout = cmp.Or(cfg.DestroyTimeout, DefaultDestroyTimeout)
	cfg.PauseTimeout = cmp.Or(cfg.PauseTimeout, DefaultPauseTimeout)
	cfg.ResumeTimeout = cmp.Or(cfg.ResumeTimeout, DefaultResumeTimeout)
	cfg.AutoResumeWait = cmp.Or(cfg.AutoResumeWait, DefaultAutoResumeWait)
	cfg.MissingAfter = cmp.Or(cfg.MissingAfter, DefaultMissingAfter)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.EgressDeny == nil {
		cfg.EgressDeny = egress.DefaultDeny()
	}
	cfg.MaxVCPUs = cmp.Or(cfg.MaxVCPUs, DefaultMaxVCPUs)
	cfg.MaxMemoryMB = cmp.Or(cfg.MaxMemoryMB, DefaultMaxMemoryMB)
	cfg.MaxDiskMB = cmp.Or(cfg.MaxDiskMB, DefaultMaxDiskMB)
	cfg.MaxLifetime = cmp.Or(cfg.MaxLifetime, DefaultMaxLifetime)
	if cfg.MaxVCPUs < 1 || cfg.MaxMemoryMB < capsulespec.MinMemoryMB || cfg.MaxDiskMB < 0 || cfg.MaxLifetime < time.Second {
		return nil, errdefs.Invalid("lifecycle: per-capsule maxima must be at least 1 vCPU, %d MB of memory, 0 MB of disk and 1 s of lifetime", capsulespec.MinMemoryMB)
	}
	cfg.TeamQuota = store.Quota{
		Capsules:  quotaField(cfg.TeamQuota.Capsules, DefaultTeamCapsules),
		VCPUs:     quotaField(cfg.TeamQuota.VCPUs, DefaultTeamVCPUs),
		MemoryMB:  quotaField(cfg.TeamQuota.MemoryMB, DefaultTeamMemoryMB),
		Snapshots: quotaField(cfg.TeamQuota.Snapshots, DefaultTeamSnapshots),
		DiskMB:    quotaField(cfg.TeamQuota.DiskMB, DefaultTeamDiskMB),
	}
	cfg.TeamPooled = cmp.Or(cfg.TeamPooled, DefaultTeamPooled)
	ctx, cancel := context.WithCancel(context.Background())
	reg := metrics.OrDiscard(cfg.Metrics)
	s := &Service{
		cfg:       cfg,
		log:       cfg.Logger,
		store:     cfg.Store,
		ev:        cfg.Events,
		hosts:     cfg.Hosts,
		ctx:       ctx,
		cancel:    cancel,
		inflight:  map[string]int{},
		silent:    map[string]int{},
		started:   cfg.Now().UTC(),
		snapWaits: map[string]*snapshotWait{},
	}
	var err error
	if s.metrics, err = newLifeMetrics(reg); err == nil {
		err = metrics.Register(reg, newCapsuleCollector(s), newBacklogGauge(cfg.Events))
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("lifecycle: %w", err)
	}
	return s, nil
}

// quotaField turns a Config.TeamQuota field into a store.Quota one: zero
// is the default, negative is no limit (the store's zero).
func quotaField(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// Run reconciles at once and then every ReconcileInterval, and applies the
// event stream to the store as a fallback writer, until ctx is done. The
// first pass resolves at once the capsules a previous control plane left
// starting or stopping (see Reconcile); run it under the component's
// context, in the background.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.consume(ctx) })
	if s.cfg.Holder != "" {
		wg.Go(func() { s.touchInflight(ctx) })
	}
	t := time.NewTicker(s.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		if s.holdsReconcileLease(ctx) {
			if err := s.Reconcile(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("reconcile", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

// reconcileLease is the lease under which one of several control planes
// runs the periodic reconcile.
const reconcileLease = "reconcile"

// holdsReconcileLease takes or renews the reconcile lease; without a
// Holder there is nothing to share and the answer is yes.
func (s *Service) holdsReconcileLease(ctx context.Context) bool {
	if s.cfg.Holder == "" {
		return true
	}
	now := s.cfg.Now()
	ok, err := s.store.AcquireLease(ctx, reconcileLease, s.cfg.Holder, now.Add(2*s.cfg.ReconcileInterval), now)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("acquire the reconcile lease", "err", err)
	}
	return ok
}

// Close waits up to grace for background creates and destroys to finish,
// then cancels the rest. A capsule whose work was cancelled is left in its
// transient status for the next reconcile to resolve.
func (s *Service) Close(grace time.Duration) {
	done := make(chan struct{})
	go func() { s.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.cancel()
		<-done
	}
	s.cancel()
}

// background runs fn for capsule id under the service's context, marking
// the capsule as in flight meanwhile.
func (s *Service) background(id string, fn func(ctx context.Context)) {
	s.backgroundFor([]string{id}, fn)
}

// backgroundFor is background for work that concerns several capsules
// (a fork: its source and its forks), all marked in flight meanwhile.
func (s *Service) backgroundFor(ids []string, fn func(ctx context.Context)) {
	s.mu.Lock()
	for _, id := range ids {
		s.inflight[id]++
	}
	s.mu.Unlock()
	s.bg.Go(func() {
		defer func() {
			s.mu.Lock()
			for _, id := range ids {
				if s.inflight[id]--; s.inflight[id] == 0 {
					delete(s.inflight, id)
				}
			}
			s.mu.Unlock()
		}()
		fn(s.ctx)
	})
}

func (s *Service) isInflight(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight[id] > 0
}
