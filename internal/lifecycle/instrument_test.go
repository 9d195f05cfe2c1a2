package lifecycle_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	. "nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/lifecycle/fakehost"
	"nestbox.dev/internal/metrics/metricstest"
)

// TestMetricsOfCreateAndDestroy does a create, a destroy and a failed
// create with the fake host and checks that the series of each moved: the
// operation histograms by outcome and the capsules the store holds by
// host and status.
func TestMetricsOfCreateAndDestroy(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, func(c *Config) { c.Metrics = reg })
	ctx := context.Background()

	fams := metricstest.Families(t, reg)
	if got := metricstest.Value(t, fams, "nestbox_capsules", "host", "h1", "status", "running"); got != 0 {
		t.Fatalf("before any create: %g running capsules, want 0", got)
	}
	// Every live status of the host is a series, zero included.
	if got, want := metricstest.Series(fams, "nestbox_capsules"), 7; got != want {
		t.Fatalf("nestbox_capsules has %d series, want %d (one per live status of h1):\n%s", got, want, metricstest.Describe(fams, "nestbox_capsules"))
	}

	// A subscriber that reads nothing: the create's events wait for it.
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	if _, err := f.events.Subscribe(sctx); err != nil {
		t.Fatal(err)
	}
	c, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	f.settle(t, c.ID, nestbox.StatusRunning)
	fams = metricstest.Families(t, reg)
	// starting and running, one of them in its delivery goroutine's hand.
	if got := metricstest.Value(t, fams, "nestbox_events_backlog"); got < 1 {
		t.Errorf("nestbox_events_backlog = %g with an unread subscriber after two events, want at least 1", got)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"nestbox_capsules", []string{"host", "h1", "status", "running"}, 1},
		{"nestbox_capsules", []string{"host", "h1", "status", "starting"}, 0},
		{"nestbox_lifecycle_operation_duration_seconds", []string{"op", "create", "outcome", "ok"}, 1},
		{"nestbox_lifecycle_operation_duration_seconds", []string{"op", "destroy", "outcome", "ok"}, 0},
	} {
		if got := metricstest.Value(t, fams, tc.name, tc.labels...); got != tc.want {
			t.Errorf("after a create: %s%v = %g, want %g", tc.name, tc.labels, got, tc.want)
		}
	}

	if _, err := f.svc.Destroy(ctx, team, c.ID); err != nil {
		t.Fatal(err)
	}
	f.settle(t, c.ID, nestbox.StatusStopped)
	f.agent.FailNextCreate(errdefs.Unavailable("no room"))
	bad, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	f.settle(t, bad.ID, nestbox.StatusError)
	fams = metricstest.Families(t, reg)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"nestbox_capsules", []string{"host", "h1", "status", "running"}, 0},
		{"nestbox_lifecycle_operation_duration_seconds", []string{"op", "create", "outcome", "ok"}, 1},
		{"nestbox_lifecycle_operation_duration_seconds", []string{"op", "destroy", "outcome", "ok"}, 1},
		{"nestbox_lifecycle_operation_duration_seconds", []string{"op", "create", "outcome", "unavailable"}, 1},
	} {
		if got := metricstest.Value(t, fams, tc.name, tc.labels...); got != tc.want {
			t.Errorf("after a destroy and a failed create: %s%v = %g, want %g\n%s", tc.name, tc.labels, got, tc.want, metricstest.Describe(fams, tc.name))
		}
	}
}

// TestMetricsOfReconcile takes the host down until its capsule is
// missing, brings it back, and checks the reconcile counters and the
// event stream's lag histogram (the consumer runs in Run).
func TestMetricsOfReconcile(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, func(c *Config) { c.Metrics = reg; c.ReconcileInterval = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	c, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	f.settle(t, c.ID, nestbox.StatusRunning)
	f.agent.SetDown(true)
	for range DefaultMissingAfter {
		f.svc.Reconcile(ctx) // errors: the host is down
	}
	f.settle(t, c.ID, nestbox.StatusMissing)
	f.agent.SetDown(false)
	if err := f.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	f.settle(t, c.ID, nestbox.StatusRunning)

	fams := metricstest.Families(t, reg)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"nestbox_reconcile_hosts_total", []string{"host", "h1", "outcome", "unreachable"}, DefaultMissingAfter},
		{"nestbox_reconcile_repairs_total", []string{"from", "running", "to", "missing"}, 1},
		{"nestbox_reconcile_repairs_total", []string{"from", "missing", "to", "running"}, 1},
	} {
		if got := metricstest.Value(t, fams, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %g, want %g\n%s", tc.name, tc.labels, got, tc.want, metricstest.Describe(fams, tc.name))
		}
	}
	// Run's first pass, and the last one above, heard from the host.
	if got := metricstest.Value(t, fams, "nestbox_reconcile_hosts_total", "host", "h1", "outcome", "ok"); got < 2 {
		t.Errorf("nestbox_reconcile_hosts_total{outcome=ok} = %g, want at least 2", got)
	}
	// The consumer saw the events of these changes, each with its lag:
	// starting, running, missing, running. Its subscription starts with
	// Run, beside the first create, so the first event may come before
	// it: at least the last three.
	deadline := time.Now().Add(10 * time.Second)
	for metricstest.Value(t, metricstest.Families(t, reg), "nestbox_events_lag_seconds") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("nestbox_events_lag_seconds has %g samples, want at least 3", metricstest.Value(t, metricstest.Families(t, reg), "nestbox_events_lag_seconds"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMetricsRegistryTakesOneService: a second Service on a registry is
// refused by New with an error, not a panic.
func TestMetricsRegistryTakesOneService(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, func(c *Config) { c.Metrics = reg })
	_, err := New(Config{Store: f.store, Events: f.events, Hosts: fakehost.Hosts{Host: Host{ID: "h1", Agent: f.agent}}, Metrics: reg})
	if err == nil {
		t.Fatal("a second Service on one registry: no error")
	}
}
