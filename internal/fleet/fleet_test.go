package fleet_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/fleet"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/metrics/metricstest"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlite"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// watcher records what the registry tells the lifecycle.
type watcher struct {
	mu                 sync.Mutex
	unreachable, backs []string
}

func (w *watcher) HostUnreachable(ctx context.Context, id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unreachable = append(w.unreachable, id)
	return nil
}

func (w *watcher) ReconcileHostSoon(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.backs = append(w.backs, id)
}

func (w *watcher) seen() (unreachable, backs []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.unreachable), slices.Clone(w.backs)
}

func newStore(t *testing.T) store.Store {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "nestbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newRegistry(st store.Store, c *clock, w fleet.HostWatcher, holder string) *fleet.Registry {
	return fleet.New(fleet.Config{Store: st, Now: c.now, Watcher: w, Holder: holder, HeartbeatInterval: time.Second,
		Connect: func(id, url, token string) lifecycle.Host { return lifecycle.Host{ID: id, ProxyURL: url} }})
}

// join registers a host and reports capacity for it.
func join(t *testing.T, r *fleet.Registry, name string, c nestbox.HostCapacity) string {
	t.Helper()
	ctx := context.Background()
	secret, _, err := r.CreateJoinToken(ctx, "u1", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	j, err := r.Register(ctx, secret, fleet.Registration{Name: name, URL: "http://" + name + ":5007"})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	if len(j.AgentToken) < 32 || j.HostID == "" {
		t.Fatalf("joined %+v: want an ID and a long agent token", j)
	}
	if _, err := r.Heartbeat(ctx, j.HostID, "http://"+name+":5007", c); err != nil {
		t.Fatalf("heartbeat %s: %v", name, err)
	}
	return j.HostID
}

func capacity(freeMiB uint64) nestbox.HostCapacity {
	return nestbox.HostCapacity{CPUs: 4, MemoryTotalBytes: 8 << 30, MemoryAvailableBytes: 8 << 30,
		MemoryCommitLimit: 4 << 30, MemoryAllocatedBytes: (4<<10 - freeMiB) << 20, DiskTotalBytes: 100 << 30, DiskAvailableBytes: 100 << 30}
}

func TestRegisterAndAuthenticate(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := newStore(t)
	r := newRegistry(st, c, nil, "")
	secret, tok, err := r.CreateJoinToken(ctx, "u1", time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !fleet.IsJoinToken(secret) || tok.UsesLeft != 1 || !tok.Expires.Equal(c.now().Add(time.Hour)) {
		t.Fatalf("CreateJoinToken = %q, %+v", secret, tok)
	}
	for _, tc := range []struct {
		name, token, url string
		want             error
	}{
		{"no token", "", "http://h:5007", errdefs.ErrUnauthenticated},
		{"a wrong token", "nbj_wrong", "http://h:5007", errdefs.ErrUnauthenticated},
		{"a bad URL", secret, "ftp://h", errdefs.ErrInvalid},
		{"a URL with a query", secret, "http://h:5007/?x=1", errdefs.ErrInvalid},
	} {
		if _, err := r.Register(ctx, tc.token, fleet.Registration{URL: tc.url}); !errors.Is(err, tc.want) {
			t.Errorf("register with %s: %v, want %v", tc.name, err, tc.want)
		}
	}
	j, err := r.Register(ctx, secret, fleet.Registration{Name: "a", URL: "http://a:5007/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(ctx, secret, fleet.Registration{Name: "b", URL: "http://b:5007"}); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("a second registration with a one-use token: %v, want unauthenticated", err)
	}
	h, err := r.Host(ctx, j.HostID)
	if err != nil || h.Address != "http://a:5007" || h.AgentToken != j.AgentToken || h.State != store.HostActive {
		t.Errorf("the registered host = %+v, %v", h, err)
	}
	good := agentEventsToken(j.AgentToken)
	if !r.AuthenticateHost(ctx, j.HostID, good) {
		t.Errorf("the host's events token is refused")
	}
	for name, tc := range map[string][2]string{
		"the agent token itself": {j.AgentToken, j.HostID},
		"another host's ID":      {good, "h_other"},
		"an empty token":         {"", j.HostID},
	} {
		if r.AuthenticateHost(ctx, tc[1], tc[0]) {
			t.Errorf("AuthenticateHost accepts %s", name)
		}
	}
	// Expired tokens let nobody in.
	secret2, _, _ := r.CreateJoinToken(ctx, "u1", time.Minute, 5)
	c.add(2 * time.Minute)
	if _, err := r.Register(ctx, secret2, fleet.Registration{URL: "http://c:5007"}); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("register with an expired token: %v, want unauthenticated", err)
	}
	for _, tc := range []struct {
		ttl  time.Duration
		uses int
	}{{time.Second, 1}, {31 * 24 * time.Hour, 1}, {time.Hour, -1}, {time.Hour, 1001}} {
		if _, _, err := r.CreateJoinToken(ctx, "u1", tc.ttl, tc.uses); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("CreateJoinToken(%s, %d): %v, want invalid", tc.ttl, tc.uses, err)
		}
	}
}

func TestPick(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := newStore(t)
	r := newRegistry(st, c, nil, "")
	req := nestbox.CreateCapsuleRequest{Template: "base", VCPUs: 1, MemoryMB: 512}
	if _, err := r.Pick(ctx, req); !errors.Is(err, lifecycle.ErrNoCapacity) {
		t.Fatalf("Pick with no host: %v, want ErrNoCapacity", err)
	}
	full := join(t, r, "full", capacity(256))
	roomy := join(t, r, "roomy", capacity(3000))
	some := join(t, r, "some", capacity(1500))

	// full has no room; roomy and some are both sampled (best of 2) and
	// the one with more memory left after the capsule wins. This control
	// plane counts its own placements until the next report: roomy
	// (1096 MiB committed) takes three capsules of 512 MiB, then some
	// (2596 committed) has more left, then roomy again.
	var got []string
	for range 5 {
		h, err := r.Pick(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.ID)
	}
	if want := []string{roomy, roomy, roomy, some, roomy}; !slices.Equal(got, want) {
		t.Errorf("5 picks went to %v, want %v (roomy %s, some %s, full %s)", got, want, roomy, some, full)
	}
	// A heartbeat replaces the count with the host's report.
	if _, err := r.Heartbeat(ctx, roomy, "http://roomy:5007", capacity(3500)); err != nil {
		t.Fatal(err)
	}
	c.add(2 * time.Second) // past the cache
	if h, _ := r.Pick(ctx, req); h.ID != roomy {
		t.Errorf("after roomy's report of 3500 MiB free, the pick is %s, want roomy", h.ID)
	}

	// Cordoned and draining hosts take nothing; a stale one neither.
	if err := r.SetState(ctx, roomy, store.HostCordoned); err != nil {
		t.Fatal(err)
	}
	if err := r.SetState(ctx, some, store.HostDraining); err != nil {
		t.Fatal(err)
	}
	_, err := r.Pick(ctx, req)
	if !errors.Is(err, lifecycle.ErrNoCapacity) || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Pick with only a full host active: %v, want ErrNoCapacity (unavailable)", err)
	}
	if err := r.SetState(ctx, roomy, store.HostActive); err != nil {
		t.Fatal(err)
	}
	c.add(10 * time.Second) // three heartbeat intervals without one
	if _, err := r.Pick(ctx, req); !errors.Is(err, lifecycle.ErrNoCapacity) {
		t.Errorf("Pick when every host's report is stale: %v, want ErrNoCapacity", err)
	}
	if _, err := r.Pick(ctx, nestbox.CreateCapsuleRequest{VCPUs: 8}); !errors.Is(err, lifecycle.ErrNoCapacity) {
		t.Errorf("Pick of 8 vCPUs on 4-core hosts: %v, want ErrNoCapacity", err)
	}
}

// TestPickPrefersWarmPool: a host whose warm pool holds a sandbox of the
// template wins over one with somewhat more memory left; for another
// template, memory decides.
func TestPickPrefersWarmPool(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := newRegistry(newStore(t), c, nil, "")
	warmCap := capacity(2000)
	warmCap.Pooled = []string{"base"}
	roomy := join(t, r, "roomy", capacity(3000))
	warm := join(t, r, "warm", warmCap)
	if h, err := r.Pick(ctx, nestbox.CreateCapsuleRequest{Template: "base", MemoryMB: 512}); err != nil || h.ID != warm {
		t.Errorf("pick for base: %s, %v; want the host with a warm base sandbox %s (roomy %s)", h.ID, err, warm, roomy)
	}
	if h, err := r.Pick(ctx, nestbox.CreateCapsuleRequest{Template: "minimal", MemoryMB: 512}); err != nil || h.ID != roomy {
		t.Errorf("pick for minimal: %s, %v; want the roomier host %s", h.ID, err, roomy)
	}
}

// TestMonitor checks that a silent host is reported once, by whichever
// of two control planes holds the lease, and that its next heartbeat
// asks for a reconcile.
func TestMonitor(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := newStore(t)
	w1, w2 := &watcher{}, &watcher{}
	r1, r2 := newRegistry(st, c, w1, "cp1"), newRegistry(st, c, w2, "cp2")
	quiet := join(t, r1, "quiet", capacity(1000))
	loud := join(t, r1, "loud", capacity(1000))

	var wg sync.WaitGroup
	for _, r := range []*fleet.Registry{r1, r2} {
		wg.Go(func() { r.Run(ctx) })
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.add(500 * time.Millisecond)
		if _, err := r2.Heartbeat(ctx, loud, "http://loud:5007", capacity(1000)); err != nil {
			t.Fatal(err)
		}
		u1, _ := w1.seen()
		u2, _ := w2.seen()
		if len(u1)+len(u2) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // any second report would come now
	u1, _ := w1.seen()
	u2, _ := w2.seen()
	if all := append(u1, u2...); !slices.Equal(all, []string{quiet}) {
		t.Fatalf("hosts reported unreachable: cp1 %v, cp2 %v; want %s once", u1, u2, quiet)
	}
	if len(u1) > 0 && len(u2) > 0 {
		t.Errorf("both control planes ran the monitor")
	}
	h, _ := r1.Host(ctx, quiet)
	if !h.Unreachable {
		t.Errorf("the quiet host is not unreachable in the store")
	}
	if _, err := r1.Pick(ctx, nestbox.CreateCapsuleRequest{MemoryMB: 100}); err != nil {
		t.Fatalf("Pick: %v", err)
	}
	if _, err := r2.Heartbeat(ctx, quiet, "http://quiet:5007", capacity(1000)); err != nil {
		t.Fatal(err)
	}
	if _, backs := w2.seen(); !slices.Equal(backs, []string{quiet}) {
		t.Errorf("a heartbeat from the unreachable host asked for reconciles of %v, want [%s]", backs, quiet)
	}
	cancel()
	wg.Wait()
}

func TestRemove(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Now()}
	r := newRegistry(newStore(t), c, nil, "")
	id := join(t, r, "a", capacity(1000))
	if err := r.Remove(ctx, id, 2); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("Remove with live capsules: %v, want conflict", err)
	}
	if err := r.Remove(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get after Remove: %v, want not found", err)
	}
	if err := r.Remove(ctx, id, 0); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Remove again: %v, want not found", err)
	}
}

// flakyStore is a store whose monitor lease fails while down is set, as
// every call would while the database restarts.
type flakyStore struct {
	store.Store
	down atomic.Bool
}

func (s *flakyStore) AcquireLease(ctx context.Context, name, holder string, until, now time.Time) (bool, error) {
	if s.down.Load() {
		return false, errdefs.Unavailable("the database is restarting")
	}
	return s.Store.AcquireLease(ctx, name, holder, until, now)
}

// TestMonitorAfterStoreOutage checks that hosts whose heartbeats could
// not be recorded while the store was down are not judged silent the
// moment it is back: the monitor waits three heartbeat intervals, then
// reports a host that still has not been heard from.
func TestMonitorAfterStoreOutage(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := &flakyStore{Store: newStore(t)}
	w := &watcher{}
	r := newRegistry(st, c, w, "cp1") // heartbeats every second, unreachable after 3 s
	reporting := join(t, r, "reporting", capacity(1000))
	silent := join(t, r, "silent", capacity(1000))

	st.down.Store(true)
	for range 10 {
		c.add(time.Second)
		fleet.MonitorOnce(r, ctx)
	}
	st.down.Store(false)
	// Back: for three intervals nobody is judged, while the reporting
	// host's heartbeats are recorded again.
	for i := range 3 {
		fleet.MonitorOnce(r, ctx)
		if u, _ := w.seen(); len(u) > 0 {
			t.Fatalf("%d s after the store came back, hosts %v were reported unreachable", i, u)
		}
		if _, err := r.Heartbeat(ctx, reporting, "http://reporting:5007", capacity(1000)); err != nil {
			t.Fatal(err)
		}
		c.add(time.Second)
	}
	fleet.MonitorOnce(r, ctx)
	if u, _ := w.seen(); !slices.Equal(u, []string{silent}) {
		t.Errorf("three intervals after the store came back, hosts reported unreachable: %v, want only the silent one %s", u, silent)
	}
}

// TestCollector checks the fleet's metrics: hosts by state and
// reachability (every state reported, zero included) and the age of each
// host's last heartbeat, on the registry's clock.
func TestCollector(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := newRegistry(newStore(t), c, nil, "cp1")
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(r.Collector())
	live := join(t, r, "live", capacity(1000))
	cordoned := join(t, r, "cordoned", capacity(1000))
	silent := join(t, r, "silent", capacity(1000))
	if err := r.SetState(ctx, cordoned, store.HostCordoned); err != nil {
		t.Fatal(err)
	}
	c.add(10 * time.Second)
	if _, err := r.Heartbeat(ctx, live, "http://live:5007", capacity(1000)); err != nil {
		t.Fatal(err)
	}
	fleet.MonitorOnce(r, ctx) // cordoned and silent: 10 s without a heartbeat
	c.add(2 * time.Second)    // past the host cache

	fams := metricstest.Families(t, reg)
	for _, tc := range []struct {
		state, reachable string
		want             float64
	}{
		{"active", "true", 1}, {"active", "false", 1}, {"cordoned", "false", 1},
		{"cordoned", "true", 0}, {"draining", "true", 0}, {"draining", "false", 0},
	} {
		if got := metricstest.Value(t, fams, "nestbox_fleet_hosts", "state", tc.state, "reachable", tc.reachable); got != tc.want {
			t.Errorf("nestbox_fleet_hosts{state=%q,reachable=%q} = %v, want %v", tc.state, tc.reachable, got, tc.want)
		}
	}
	if n := len(fams["nestbox_fleet_hosts"].GetMetric()); n != 6 {
		t.Errorf("nestbox_fleet_hosts has %d series, want 6 (3 states, reachable or not)", n)
	}
	for id, want := range map[string]float64{live: 2, cordoned: 12, silent: 12} {
		if got := metricstest.Value(t, fams, "nestbox_fleet_host_heartbeat_age_seconds", "host", id); got != want {
			t.Errorf("heartbeat age of %s = %v, want %v", id, got, want)
		}
	}
}
