// Package usage is the control plane's usage accounting. A Worker samples
// every running capsule from the host agents at a fixed interval into the
// store (one ListSandboxMetrics call per host and pass), rolls completed
// UTC days up per team every hour (the days missed while no control plane
// ran included), and deletes samples past the retention; Report answers
// GET /v1/capsules/usage from the rolled days and, for today and days not
// rolled yet, at query time from the hours rolled so far and the samples
// since. internal/controlplane runs
// the Worker and internal/server calls Report; nothing else imports it.
//
// Capsules are accounted by allocation (vCPUs, memory limit and disk size,
// times the seconds they ran: what a capsule holds whatever it does, and
// how E2B bills) and by what was measured (CPU time, memory and disk in
// use), both kept. Only running capsules count: a paused one holds no CPU
// or memory.
package usage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/store"
)

// Defaults of Config.
const (
	DefaultInterval       = 30 * time.Second
	DefaultRetentionDays  = 35
	DefaultRollupInterval = time.Hour
	DefaultQueryTimeout   = 10 * time.Second
)

// lease is the lease under which one control plane of several samples,
// rolls up and expires.
const lease = "usage"

// Hosts lists the hosts to sample (lifecycle.Hosts has it).
type Hosts interface {
	All() []lifecycle.Host
}

// Config configures a Worker. Store and Hosts are required; zero values of
// the rest mean the documented defaults.
type Config struct {
	Store  store.Store
	Hosts  Hosts
	Logger *slog.Logger
	// Interval is how often running capsules are sampled; zero means 30 s.
	Interval time.Duration
	// RetentionDays is how many whole days of samples are kept before
	// today; zero means 35. The daily rows are kept for good.
	RetentionDays int
	// RollupInterval is how often completed days are rolled up and old
	// samples deleted; zero means an hour.
	RollupInterval time.Duration
	// QueryTimeout bounds one host's ListSandboxMetrics; zero means 10 s.
	QueryTimeout time.Duration
	// Holder, if not "", names this control plane among several that
	// share the store: the Worker then works only while it holds the
	// "usage" lease. "" works at every pass (one control plane).
	Holder string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Worker samples, rolls up and expires usage. Create it with New and run
// it with Run; Sample and Rollup are one step each, for tests.
type Worker struct {
	cfg Config
	log *slog.Logger

	// mu guards the fields below (Run is one goroutine; a test may call
	// Sample beside it).
	mu sync.Mutex
	// prev is when the previous sampling pass of this Worker ran, zero
	// when there was none or the lease was lost since: a sample accounts
	// for the time since then.
	prev time.Time
	// rolled is when Run last rolled up.
	rolled time.Time
}

// New returns a Worker.
func New(cfg Config) (*Worker, error) {
	if cfg.Store == nil || cfg.Hosts == nil {
		return nil, errors.New("usage: Store and Hosts are required")
	}
	cfg.Interval = cmp.Or(cfg.Interval, DefaultInterval)
	cfg.RetentionDays = cmp.Or(cfg.RetentionDays, DefaultRetentionDays)
	cfg.RollupInterval = cmp.Or(cfg.RollupInterval, DefaultRollupInterval)
	cfg.QueryTimeout = cmp.Or(cfg.QueryTimeout, DefaultQueryTimeout)
	if cfg.Interval < time.Second || cfg.RetentionDays < 1 || cfg.RollupInterval < time.Second {
		return nil, errors.New("usage: the interval must be at least 1 s, the retention at least 1 day")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Worker{cfg: cfg, log: cfg.Logger}, nil
}

// Run samples at once and then every Interval (and then rolls the hours
// completed since the last pass), and rolls up days and expires at once
// and then every RollupInterval, until ctx ends; run it under the
// component's context. The first rollup rolls the days missed while no
// control plane ran.
func (w *Worker) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		w.pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// pass is one tick of Run.
func (w *Worker) pass(ctx context.Context) {
	if !w.holdsLease(ctx) {
		w.mu.Lock()
		w.prev = time.Time{} // another replica samples meanwhile
		w.mu.Unlock()
		return
	}
	if _, err := w.Sample(ctx); err != nil && ctx.Err() == nil {
		w.log.Warn("sample usage", "err", err)
	}
	// The hours just completed, so that a query of today reads their sums
	// instead of their samples: when none is due, two reads.
	if _, err := store.RollUsageHours(ctx, w.cfg.Store, w.cfg.Now()); err != nil && ctx.Err() == nil {
		w.log.Warn("roll up usage hours", "err", err)
	}
	now := w.cfg.Now()
	w.mu.Lock()
	due := w.rolled.IsZero() || now.Sub(w.rolled) >= w.cfg.RollupInterval
	if due {
		w.rolled = now
	}
	w.mu.Unlock()
	if due {
		if err := w.Rollup(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("roll up usage", "err", err)
		}
	}
}

func (w *Worker) holdsLease(ctx context.Context) bool {
	if w.cfg.Holder == "" {
		return true
	}
	now := w.cfg.Now()
	ok, err := w.cfg.Store.AcquireLease(ctx, lease, w.cfg.Holder, now.Add(3*w.cfg.Interval), now)
	if err != nil && ctx.Err() == nil {
		w.log.Warn("acquire the usage lease", "err", err)
	}
	return ok
}

// Rollup rolls every completed day not rolled yet, then deletes the
// samples past the retention.
func (w *Worker) Rollup(ctx context.Context) error {
	now := w.cfg.Now()
	days, err := store.RollUsage(ctx, w.cfg.Store, now)
	for _, d := range days {
		w.log.Info("usage rolled up", "day", d.Format(store.UsageDayLayout))
	}
	if err != nil {
		return err
	}
	n, err := store.ExpireUsage(ctx, w.cfg.Store, now, w.cfg.RetentionDays)
	if n > 0 {
		w.log.Info("usage samples past the retention deleted", "samples", n, "retention_days", w.cfg.RetentionDays)
	}
	return err
}

// Sample takes one sample of every running capsule whose host answers and
// stores them; it returns how many. A host that does not answer is logged
// and skipped: its capsules' time in this interval is not counted.
func (w *Worker) Sample(ctx context.Context) (int, error) {
	now := w.cfg.Now().UTC().Truncate(time.Second)
	w.mu.Lock()
	prev := w.prev
	w.prev = now
	w.mu.Unlock()
	// The interval this pass accounts for: since the previous one, at
	// most two intervals (a slow pass is counted, a control plane that
	// stopped is not), one interval for a first pass.
	span := w.cfg.Interval
	if !prev.IsZero() {
		span = min(max(now.Sub(prev), 0), 2*w.cfg.Interval)
	}

	byHost, err := w.running(ctx)
	if err != nil {
		return 0, err
	}
	hosts := map[string]lifecycle.Host{}
	for _, h := range w.cfg.Hosts.All() {
		hosts[h.ID] = h
	}
	var (
		mu      sync.Mutex
		samples []store.UsageSample
		wg      sync.WaitGroup
	)
	sem := make(chan struct{}, 8)
	for hostID, capsules := range byHost {
		h, ok := hosts[hostID]
		if !ok {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			got, err := w.host(ctx, h)
			if err != nil {
				if ctx.Err() == nil {
					w.log.Warn("usage: host did not answer", "host", h.ID, "err", err)
				}
				return
			}
			var out []store.UsageSample
			for _, c := range capsules {
				if m := got[c.ID]; m != nil {
					out = append(out, sampleOf(c, m, now, span))
				}
			}
			mu.Lock()
			samples = append(samples, out...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := w.cfg.Store.AddUsageSamples(ctx, samples); err != nil {
		return 0, err
	}
	return len(samples), nil
}

// running lists the running capsules by host.
func (w *Worker) running(ctx context.Context) (map[string][]store.Capsule, error) {
	out := map[string][]store.Capsule{}
	f := store.CapsuleFilter{Statuses: []nestbox.Status{nestbox.StatusRunning}, Oldest: true, Limit: 1000}
	for {
		page, next, err := w.cfg.Store.ListCapsules(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("list running capsules: %w", err)
		}
		for _, c := range page {
			if c.HostID != "" {
				out[c.HostID] = append(out[c.HostID], c)
			}
		}
		if next == "" {
			return out, nil
		}
		f.Cursor = next
	}
}

// host asks one host for the newest sample of each of its sandboxes.
func (w *Worker) host(ctx context.Context, h lifecycle.Host) (map[string]*agentpb.SandboxMetrics, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.QueryTimeout)
	defer cancel()
	resp, err := h.Agent.ListSandboxMetrics(ctx, connect.NewRequest(&agentpb.ListSandboxMetricsRequest{}))
	if err != nil {
		return nil, err
	}
	out := make(map[string]*agentpb.SandboxMetrics, len(resp.Msg.GetSamples()))
	for _, s := range resp.Msg.GetSamples() {
		if s.GetMetrics() != nil {
			out[s.GetId()] = s.GetMetrics()
		}
	}
	return out, nil
}

// sampleOf is capsule c's sample at now, accounting for span, or less if
// c became running within it. The allocation is the capsule's row (what it
// was given); CPU time is the host's CPU % over the span.
func sampleOf(c store.Capsule, m *agentpb.SandboxMetrics, now time.Time, span time.Duration) store.UsageSample {
	if since := now.Sub(c.UpdatedAt); since < span {
		span = max(since, 0)
	}
	secs := int(span.Round(time.Second) / time.Second)
	vcpus := max(c.VCPUs, 1)
	diskMB := c.DiskMB
	if diskMB == 0 {
		diskMB = int(m.GetDiskTotalBytes() >> 20)
	}
	return store.UsageSample{
		TeamID:       c.TeamID,
		CapsuleID:    c.ID,
		At:           now,
		Seconds:      secs,
		VCPUs:        vcpus,
		MemoryMB:     c.MemoryMB,
		DiskMB:       diskMB,
		CPUMillis:    int64(math.Round(m.GetCpuUsedPct() / 100 * float64(vcpus) * float64(secs) * 1000)),
		MemoryUsedMB: int64(m.GetMemoryUsedBytes() >> 20),
		DiskUsedMB:   int64(m.GetDiskUsedBytes() >> 20),
	}
}
