package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/events"
	"nestbox.dev/internal/events/memory"
	. "nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/lifecycle/fakehost"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlite"
)

const team = "team_a"

type fixture struct {
	svc    *Service
	agent  *fakehost.Agent
	store  store.Store
	events events.Stream
}

func newFixture(t *testing.T, tweak ...func(*Config)) *fixture {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, id := range []string{team, "team_b"} {
		if err := st.CreateUser(context.Background(), store.User{ID: "u_" + id, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateTeam(context.Background(), store.Team{ID: id, Name: id, CreatedAt: time.Now()}, "u_"+id); err != nil {
			t.Fatal(err)
		}
	}
	ag := fakehost.New()
	cfg := Config{Store: st, Events: memory.New(), Hosts: fakehost.Hosts{Host: Host{ID: "h1", Agent: ag}}}
	for _, f := range tweak {
		f(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(10 * time.Second) })
	return &fixture{svc: svc, agent: ag, store: st, events: cfg.Events}
}

// unlimited lifts the team quota, for tests that make many capsules.
func unlimited(c *Config) {
	c.TeamQuota = store.Quota{Capsules: -1, VCPUs: -1, MemoryMB: -1, Snapshots: -1, DiskMB: -1}
}

// settle waits for a capsule to reach a final status or want.
func (f *fixture) settle(t *testing.T, id string, want nestbox.Status) nestbox.Capsule {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := f.svc.Wait(ctx, team, id, want)
	if err != nil {
		t.Fatalf("wait for %s: %v", id, err)
	}
	if c.Status != want {
		t.Fatalf("capsule %s: status %s (%s), want %s", id, c.Status, c.Error, want)
	}
	return c
}

func statuses(t *testing.T, st store.Store, id string) []nestbox.Status {
	t.Helper()
	evs, err := st.CapsuleEvents(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []nestbox.Status
	for _, ev := range evs {
		out = append(out, ev.To)
	}
	return out
}

func TestCreateRunsInBackground(t *testing.T) {
	f := newFixture(t)
	c, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{Metadata: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != nestbox.StatusStarting || len(c.ID) != capsulespec.IDLength || c.Template != DefaultTemplate || c.VCPUs != DefaultVCPUs || c.MemoryMB != DefaultMemoryMB || !c.Internet {
		t.Fatalf("create answered %+v, want a starting capsule with the defaults", c)
	}
	got := f.settle(t, c.ID, nestbox.StatusRunning)
	if got.EnvdVersion != "0.6.13" || got.StartedAt == nil || got.ExpiresAt == nil || got.Metadata["k"] != "v" {
		t.Fatalf("running capsule %+v lacks what the host reported", got)
	}
	if !f.agent.Has(c.ID) {
		t.Fatal("the agent has no sandbox")
	}
	rec, _ := f.store.GetCapsule(context.Background(), c.ID)
	if rec.AccessToken == "" {
		t.Fatal("no envd access token was made")
	}
	if _, err := f.svc.Get(context.Background(), "team_b", c.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("another team's Get: %v, want not found", err)
	}
	if _, err := f.svc.Destroy(context.Background(), "team_b", c.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("another team's Destroy: %v, want not found", err)
	}
	d, err := f.svc.Destroy(context.Background(), team, c.ID)
	if err != nil || d.Status != nestbox.StatusStopping {
		t.Fatalf("destroy: %+v, %v; want stopping", d, err)
	}
	f.settle(t, c.ID, nestbox.StatusStopped)
	if f.agent.Has(c.ID) {
		t.Fatal("the sandbox outlived its capsule")
	}
	want := []nestbox.Status{nestbox.StatusStarting, nestbox.StatusRunning, nestbox.StatusStopping, nestbox.StatusStopped}
	if got := statuses(t, f.store, c.ID); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history %v, want %v", got, want)
	}
}

func TestDestroyDuringCreate(t *testing.T) {
	f := newFixture(t)
	f.agent.Gate = make(chan struct{})
	c, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.svc.Destroy(context.Background(), team, c.ID)
	if err != nil || d.Status != nestbox.StatusStopping {
		t.Fatalf("destroy while starting: %+v, %v", d, err)
	}
	close(f.agent.Gate)
	f.settle(t, c.ID, nestbox.StatusStopped)
	if f.agent.Count() != 0 {
		t.Fatal("the sandbox created after its destroy was left running")
	}
}

func TestCreateFailure(t *testing.T) {
	f := newFixture(t)
	f.agent.FailNextCreate(connect.NewError(connect.CodeResourceExhausted, errors.New("no room")))
	c, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := f.settle(t, c.ID, nestbox.StatusError)
	if got.Error == "" || got.StoppedAt == nil {
		t.Fatalf("failed capsule %+v: want the reason and a stop time", got)
	}
	// A destroy of a failed capsule changes nothing.
	d, err := f.svc.Destroy(context.Background(), team, c.ID)
	if err != nil || d.Status != nestbox.StatusError {
		t.Fatalf("destroy of a failed capsule: %+v, %v", d, err)
	}
}

func TestConcurrentDestroys(t *testing.T) {
	f := newFixture(t)
	c, _ := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{})
	f.settle(t, c.ID, nestbox.StatusRunning)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := f.svc.Destroy(context.Background(), team, c.ID); err != nil {
				t.Errorf("destroy: %v", err)
			}
		})
	}
	wg.Wait()
	f.settle(t, c.ID, nestbox.StatusStopped)
	got := statuses(t, f.store, c.ID)
	if n := count(got, nestbox.StatusStopping); n != 1 {
		t.Fatalf("history %v: %d moves to stopping, want exactly 1", got, n)
	}
}

func count(ss []nestbox.Status, s nestbox.Status) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

// TestRandomInterleaving runs 50 creates and destroys at random moments:
// every capsule ends stopped and the agent ends empty.
func TestRandomInterleaving(t *testing.T) {
	f := newFixture(t, unlimited)
	var wg sync.WaitGroup
	ids := make([]string, 50)
	for i := range ids {
		wg.Go(func() {
			c, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{})
			if err != nil {
				t.Errorf("create: %v", err)
				return
			}
			ids[i] = c.ID
			time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
			if _, err := f.svc.Destroy(context.Background(), team, c.ID); err != nil {
				t.Errorf("destroy: %v", err)
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != "" {
			f.settle(t, id, nestbox.StatusStopped)
		}
	}
	if n := f.agent.Count(); n != 0 {
		t.Fatalf("%d sandboxes leaked", n)
	}
}

func TestReconcile(t *testing.T) {
	now := time.Now()
	f := newFixture(t, func(c *Config) { c.StuckAfter = time.Minute })
	ctx := context.Background()

	// Lost: running in the store, gone from the host.
	lost, _ := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{})
	f.settle(t, lost.ID, nestbox.StatusRunning)
	f.agent.Forget(lost.ID)

	// Orphan: on the host, unknown to the store.
	orphan := capsulespec.NewID()
	f.agent.CreateSandbox(ctx, connect.NewRequest(fakehost.CreateRequest(orphan)))

	// Stuck: starting for long, with no create in flight (a control plane
	// that died mid-create), and the host runs it.
	stuck := store.Capsule{Capsule: nestbox.Capsule{ID: capsulespec.NewID(), TeamID: team, Template: "base", Status: nestbox.StatusStarting, HostID: "h1", CreatedAt: now.Add(-time.Hour)}, UpdatedAt: now.Add(-time.Hour)}
	if err := f.store.CreateCapsule(ctx, stuck); err != nil {
		t.Fatal(err)
	}
	f.agent.CreateSandbox(ctx, connect.NewRequest(fakehost.CreateRequest(stuck.ID)))
	// Stuck stopping, and the host still has it.
	stopping := store.Capsule{Capsule: nestbox.Capsule{ID: capsulespec.NewID(), TeamID: team, Template: "base", Status: nestbox.StatusStopping, HostID: "h1", CreatedAt: now.Add(-time.Hour)}, UpdatedAt: now.Add(-time.Hour)}
	if err := f.store.CreateCapsule(ctx, stopping); err != nil {
		t.Fatal(err)
	}
	f.agent.CreateSandbox(ctx, connect.NewRequest(fakehost.CreateRequest(stopping.ID)))

	if err := f.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		want nestbox.Status
	}{{lost.ID, nestbox.StatusError}, {stuck.ID, nestbox.StatusRunning}, {stopping.ID, nestbox.StatusStopped}} {
		c, err := f.store.GetCapsule(ctx, tc.id)
		if err != nil || c.Status != tc.want {
			t.Errorf("capsule %s after reconcile: %s, %v; want %s", tc.id, c.Status, err, tc.want)
		}
	}
	if f.agent.Has(orphan) || f.agent.Has(stopping.ID) {
		t.Error("the reconciler left a sandbox the store has no live capsule for")
	}
	if !f.agent.Has(stuck.ID) {
		t.Error("the reconciler destroyed a capsule it found running")
	}

	// An unreachable host is reported and changes nothing.
	f.agent.SetDown(true)
	if err := f.svc.Reconcile(ctx); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("reconcile with the host down: %v, want unavailable", err)
	}
	if c, _ := f.store.GetCapsule(ctx, stuck.ID); c.Status != nestbox.StatusRunning {
		t.Fatalf("a host that does not answer changed capsule status to %s", c.Status)
	}
}

func TestHostEvents(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	run := func() string {
		c, _ := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{})
		f.settle(t, c.ID, nestbox.StatusRunning)
		return c.ID
	}
	timedOut, crashed := run(), run()
	for _, tc := range []struct {
		ev   HostEvent
		want nestbox.Status
	}{
		{HostEvent{SandboxID: timedOut, Type: "timed_out"}, nestbox.StatusStopped},
		{HostEvent{SandboxID: crashed, Type: "crashed"}, nestbox.StatusError},
	} {
		if err := f.svc.HandleHostEvent(ctx, tc.ev); err != nil {
			t.Fatalf("%+v: %v", tc.ev, err)
		}
		if c, _ := f.store.GetCapsule(ctx, tc.ev.SandboxID); c.Status != tc.want {
			t.Errorf("after %s: %s, want %s", tc.ev.Type, c.Status, tc.want)
		}
	}
	// Late and unknown events are ignored; malformed ones are refused.
	if err := f.svc.HandleHostEvent(ctx, HostEvent{SandboxID: crashed, Type: "stopped"}); err != nil {
		t.Errorf("a late event: %v", err)
	}
	if err := f.svc.HandleHostEvent(ctx, HostEvent{SandboxID: capsulespec.NewID(), Type: "crashed"}); err != nil {
		t.Errorf("an event about an unknown sandbox: %v", err)
	}
	for _, ev := range []HostEvent{{SandboxID: crashed, Type: "exploded"}, {SandboxID: "short", Type: "crashed"}} {
		if err := f.svc.HandleHostEvent(ctx, ev); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%+v: %v, want invalid", ev, err)
		}
	}
}

func TestConsumerAppliesUnrecordedEvents(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.svc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	c, _ := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{})
	f.settle(t, c.ID, nestbox.StatusRunning)
	// Another writer publishes a change it could not record.
	f.events.Publish(context.Background(), nestbox.CapsuleEvent{CapsuleID: c.ID, From: nestbox.StatusRunning, To: nestbox.StatusError, Reason: "recorded by the consumer", At: time.Now()})
	got := f.settle(t, c.ID, nestbox.StatusError)
	if got.Error != "recorded by the consumer" {
		t.Fatalf("capsule %+v: the consumer did not apply the event", got)
	}
}

func TestValidation(t *testing.T) {
	f := newFixture(t)
	no := false
	for _, req := range []nestbox.CreateCapsuleRequest{
		{Template: "Bad Name"},
		{Template: "../etc"},
		{VCPUs: -1},
		{VCPUs: 1000},
		{MemoryMB: 1},
		{DiskMB: -5},
		{TimeoutSeconds: -1},
		{TimeoutSeconds: 100000},
		{EnvVars: map[string]string{"1BAD": "x"}},
		{EnvVars: map[string]string{"A=B": "x"}},
		{Metadata: map[string]string{"": "x"}},
		{AllowOut: []string{"not-an-ip"}},
		{DenyOut: []string{"::1"}},
		{Internet: &no, AllowOut: []string{"10.0.0.0/33"}},
	} {
		if _, err := f.svc.Create(context.Background(), team, req); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("create %+v: %v, want invalid", req, err)
		}
	}
	if f.agent.Creates() != 0 {
		t.Fatalf("%d invalid requests reached the host", f.agent.Creates())
	}
}
