package lifecycle_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	. "nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/store"
)

// TestQuotaConcurrentCreates makes 20 creates at once against a team limit
// of 5 live capsules: exactly 5 are admitted, the rest are ErrExhausted
// (429), and only the admitted ones reach the host.
func TestQuotaConcurrentCreates(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.TeamQuota = store.Quota{Capsules: 5} })
	var ok, exhausted atomic.Int32
	var wg sync.WaitGroup
	ids := make([]string, 20)
	for i := range ids {
		wg.Go(func() {
			c, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{})
			switch {
			case err == nil:
				ok.Add(1)
				ids[i] = c.ID
			case errors.Is(err, errdefs.ErrExhausted):
				exhausted.Add(1)
				if got := errdefs.HTTPStatus(err); got != 429 {
					t.Errorf("quota error %v: HTTP status %d, want 429", err, got)
				}
			default:
				t.Errorf("create: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 5 || exhausted.Load() != 15 {
		t.Fatalf("%d admitted, %d refused; want 5 and 15", ok.Load(), exhausted.Load())
	}
	for _, id := range ids {
		if id != "" {
			f.settle(t, id, nestbox.StatusRunning)
		}
	}
	if n := f.agent.Count(); n != 5 {
		t.Fatalf("the host runs %d sandboxes, want 5", n)
	}
	// A destroyed capsule frees its place.
	for _, id := range ids {
		if id != "" {
			f.svc.Destroy(context.Background(), team, id)
			f.settle(t, id, nestbox.StatusStopped)
			break
		}
	}
	if _, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{}); err != nil {
		t.Fatalf("create after a destroy: %v", err)
	}
}

// TestTeamLimitsOverrideDefault: a team's stored limits replace the
// operator's default for that team only.
func TestTeamLimitsOverrideDefault(t *testing.T) {
	f := newFixture(t)
	one := 1
	if err := f.store.SetTeamLimits(context.Background(), team, store.TeamLimits{Capsules: &one}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{}); !errors.Is(err, errdefs.ErrExhausted) {
		t.Fatalf("second create of a team limited to 1: %v, want ErrExhausted", err)
	}
	if _, err := f.svc.Create(context.Background(), "team_b", nestbox.CreateCapsuleRequest{}); err != nil {
		t.Fatalf("create of another team: %v", err)
	}
	// The team's memory: 3 default capsules of 512 MB do not fit in 1 GB.
	if err := f.store.SetTeamLimits(context.Background(), "team_b", store.TeamLimits{MemoryMB: ptr(1024)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Create(context.Background(), "team_b", nestbox.CreateCapsuleRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Create(context.Background(), "team_b", nestbox.CreateCapsuleRequest{}); !errors.Is(err, errdefs.ErrExhausted) {
		t.Fatalf("create past the team's memory: %v, want ErrExhausted", err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestPerCapsuleLimits: the configured maxima refuse a request at create
// with ErrInvalid (400), before anything reaches the host.
func TestPerCapsuleLimits(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.MaxVCPUs, c.MaxMemoryMB, c.MaxDiskMB, c.MaxLifetime = 2, 1024, 2048, time.Hour
	})
	for _, req := range []nestbox.CreateCapsuleRequest{
		{VCPUs: 3},
		{MemoryMB: 1025},
		{DiskMB: 2049},
		{TimeoutSeconds: 3601},
	} {
		if _, err := f.svc.Create(context.Background(), team, req); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("create %+v: %v, want invalid", req, err)
		}
	}
	if _, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{VCPUs: 2, MemoryMB: 1024, DiskMB: 2048, TimeoutSeconds: 3600}); err != nil {
		t.Errorf("create at the limits: %v", err)
	}
	if f.agent.Creates() > 1 {
		t.Fatalf("%d requests reached the host, want at most the one within limits", f.agent.Creates())
	}
}

// TestMaxVCPUsDefault: with no MaxVCPUs, DefaultMaxVCPUs caps a
// capsule's vCPUs (each host's own cores are checked when it is picked:
// controlplane's TestSingleHostPickRefusesFullHost).
func TestMaxVCPUsDefault(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{VCPUs: DefaultMaxVCPUs + 1}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("%d vCPUs: %v, want invalid", DefaultMaxVCPUs+1, err)
	}
	if _, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{VCPUs: 2}); err != nil {
		t.Errorf("2 vCPUs: %v", err)
	}
}

// clock is a settable fake clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestSetTimeoutCappedByLifetime: SetTimeout cannot take a capsule past
// CreatedAt + MaxLifetime, however often it is called.
func TestSetTimeoutCappedByLifetime(t *testing.T) {
	clk := &clock{now: time.Now()}
	f := newFixture(t, func(c *Config) { c.MaxLifetime, c.Now = time.Hour, clk.Now })
	c, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	f.settle(t, c.ID, nestbox.StatusRunning)
	if _, err := f.svc.SetTimeout(context.Background(), team, c.ID, 50*time.Minute); err != nil {
		t.Fatalf("SetTimeout(50m) at creation: %v", err)
	}
	clk.Add(40 * time.Minute)
	if _, err := f.svc.SetTimeout(context.Background(), team, c.ID, 50*time.Minute); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("SetTimeout(50m) 40 minutes in, with a 1 h lifetime: %v, want invalid", err)
	}
	if _, err := f.svc.SetTimeout(context.Background(), team, c.ID, 19*time.Minute); err != nil {
		t.Fatalf("SetTimeout(19m) 40 minutes in: %v", err)
	}
	if _, err := f.svc.SetTimeout(context.Background(), team, c.ID, 2*time.Hour); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("SetTimeout(2h): %v, want invalid", err)
	}
}

// TestUnknownTemplate: a template no host offers is refused at once with
// ErrNotFound, not accepted and failed in the background.
func TestUnknownTemplate(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{Template: "no-such-template"})
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("create of an unknown template: %v, want not found", err)
	}
	if f.agent.Creates() != 0 {
		t.Fatalf("the create reached the host")
	}
	list, err := f.svc.List(context.Background(), team, store.CapsuleFilter{})
	if err != nil || len(list.Capsules) != 0 {
		t.Fatalf("capsules after a refused create: %+v, %v", list.Capsules, err)
	}
}

// TestEgressDenyAtCreate: an allow_out entry the operator's deny list
// blocks is refused at create (400), with the default list or a
// configured one.
func TestEgressDenyAtCreate(t *testing.T) {
	f := newFixture(t)
	for _, allow := range [][]string{{"169.254.169.254"}, {"10.1.2.3"}, {"8.8.8.8", "192.168.0.0/16"}, {"0.0.0.0/0"}, {"127.0.0.1"}} {
		if _, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{AllowOut: allow}); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("create with allow_out %v: %v, want invalid", allow, err)
		}
	}
	if _, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{AllowOut: []string{"8.8.8.8", "1.1.1.0/24"}}); err != nil {
		t.Errorf("create with public allow_out: %v", err)
	}
	g := newFixture(t, func(c *Config) { c.EgressDeny = []netip.Prefix{netip.MustParsePrefix("8.8.8.0/24")} })
	if _, err := g.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{AllowOut: []string{"8.8.8.8"}}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("create with allow_out in a configured deny list: %v, want invalid", err)
	}
	if _, err := g.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{AllowOut: []string{"10.1.2.3"}}); err != nil {
		t.Errorf("create with allow_out outside a configured deny list: %v", err)
	}
	if f.agent.Creates()+g.agent.Creates() > 2 {
		t.Fatalf("refused creates reached the host")
	}
}

// TestResumeCappedByLifetime: the lifetime cap counts from creation with
// paused time included, so a resume is shortened to end at it, and a
// capsule paused past it cannot run again.
func TestResumeCappedByLifetime(t *testing.T) {
	clk := &clock{now: time.Now()}
	f := newFixture(t, func(c *Config) { c.MaxLifetime, c.Now = time.Hour, clk.Now })
	ctx := context.Background()
	c := f.running(t, nestbox.CreateCapsuleRequest{TimeoutSeconds: 600})
	pause := func() {
		t.Helper()
		if _, err := f.svc.Pause(ctx, team, c.ID, PauseOptions{Memory: true}); err != nil {
			t.Fatal(err)
		}
		f.settle(t, c.ID, nestbox.StatusPaused)
	}
	pause()
	clk.Add(55 * time.Minute)
	if _, err := f.svc.Resume(ctx, team, c.ID, ResumeOptions{Timeout: 30 * time.Minute}); err != nil {
		t.Fatalf("Resume(30m) 55 minutes into a 1 h lifetime: %v", err)
	}
	f.settle(t, c.ID, nestbox.StatusRunning)
	if rs := f.agent.Resumes(); len(rs) != 1 || rs[0].GetTimeoutSeconds() > 300 || rs[0].GetTimeoutSeconds() < 290 {
		t.Fatalf("resume requests %v, want one shortened to the ~300 s left of the lifetime", rs)
	}
	pause()
	clk.Add(10 * time.Minute)
	_, err := f.svc.Resume(ctx, team, c.ID, ResumeOptions{})
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "maximum lifetime") {
		t.Fatalf("Resume past the lifetime: %v, want a conflict naming the maximum lifetime", err)
	}
	if got, _ := f.store.GetCapsule(ctx, c.ID); got.Status != nestbox.StatusPaused {
		t.Fatalf("after a refused resume: %s, want still paused", got.Status)
	}
}
