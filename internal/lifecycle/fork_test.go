package lifecycle_test

import (
	"context"
	"errors"
	"testing"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	. "nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/store"
)

// TestFork: the forks are recorded at once in starting, each with its own
// ID and secrets and the source's sizes, environment and metadata; the
// host is asked once for all of them; the one it fails ends in error, the
// others run; the source is untouched.
func TestFork(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	src := f.running(t, nestbox.CreateCapsuleRequest{MemoryMB: 256, EnvVars: map[string]string{"K": "v"}, Metadata: map[string]string{"m": "1"}, PublicTraffic: new(bool)})
	srcRow, err := f.store.GetCapsule(ctx, src.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, forks, err := f.svc.Fork(ctx, team, src.ID, ForkOptions{Count: 3})
	if err != nil || got.ID != src.ID || len(forks) != 3 {
		t.Fatalf("Fork = %s, %d forks, %v", got.ID, len(forks), err)
	}
	seen := map[string]bool{src.ID: true}
	for i, r := range forks {
		c := r.Capsule
		if r.Err != nil || c.Status != nestbox.StatusStarting || seen[c.ID] {
			t.Fatalf("fork %d: %+v, %v; want a new capsule starting", i, c, r.Err)
		}
		seen[c.ID] = true
		row, err := f.store.GetCapsule(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if row.MemoryMB != 256 || row.Template != src.Template || row.EnvVars["K"] != "v" || row.Metadata["m"] != "1" {
			t.Errorf("fork %d row %+v: want the source's sizes, environment and metadata", i, row)
		}
		if row.AccessToken == "" || row.AccessToken == srcRow.AccessToken || row.TrafficAccessToken == "" || row.TrafficAccessToken == srcRow.TrafficAccessToken {
			t.Errorf("fork %d: tokens %q/%q, the source's %q/%q; want new ones", i, row.AccessToken, row.TrafficAccessToken, srcRow.AccessToken, srcRow.TrafficAccessToken)
		}
	}
	// The host was asked once, with the forks' new tokens.
	f.settle(t, forks[0].Capsule.ID, nestbox.StatusRunning)
	for _, r := range forks[1:] {
		f.settle(t, r.Capsule.ID, nestbox.StatusRunning)
	}
	reqs := f.agent.Forks()
	if len(reqs) != 1 || reqs[0].GetId() != src.ID || len(reqs[0].GetForks()) != 3 {
		t.Fatalf("fork requests %v, want one for the source with 3 forks", reqs)
	}
	for i, fc := range reqs[0].GetForks() {
		row, _ := f.store.GetCapsule(ctx, fc.GetId())
		if fc.GetAccessToken() != row.AccessToken || fc.GetTimeoutSeconds() != 300 {
			t.Errorf("fork %d sent with token %q and timeout %d, want the recorded token and 300 s", i, fc.GetAccessToken(), fc.GetTimeoutSeconds())
		}
	}
	if c, _ := f.store.GetCapsule(ctx, src.ID); c.Status != nestbox.StatusRunning {
		t.Errorf("source after the fork: %s, want running", c.Status)
	}
}

// TestForkFailsAlone: a fork the host reports failed ends in error with
// the host's reason; its sibling runs.
func TestForkFailsAlone(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	src := f.running(t, nestbox.CreateCapsuleRequest{})
	var failID string
	f.agent.OnFork = func(ids []string) {
		failID = ids[1]
		f.agent.FailForks(map[string]error{ids[1]: connect.NewError(connect.CodeResourceExhausted, errors.New("no room"))})
	}
	_, forks, err := f.svc.Fork(ctx, team, src.ID, ForkOptions{Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	ok := f.settle(t, forks[0].Capsule.ID, nestbox.StatusRunning)
	bad := f.settle(t, forks[1].Capsule.ID, nestbox.StatusError)
	if forks[1].Capsule.ID != failID || bad.Error == "" || ok.Error != "" {
		t.Fatalf("forks: %+v and %+v; want the second in error with the host's reason", ok, bad)
	}
}

// TestForkRefusals: bad counts and timeouts, a source that is not running,
// another team's capsule, and the team's quota.
func TestForkRefusals(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.TeamQuota = store.Quota{Capsules: 3} })
	ctx := context.Background()
	src := f.running(t, nestbox.CreateCapsuleRequest{})
	for _, o := range []ForkOptions{{Count: -1}, {Count: MaxForks + 1}, {Count: 1, Timeout: -1}, {Count: 1, Timeout: 1 << 62}} {
		if _, _, err := f.svc.Fork(ctx, team, src.ID, o); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Fork(%+v) = %v, want invalid", o, err)
		}
	}
	if _, _, err := f.svc.Fork(ctx, "team_b", src.ID, ForkOptions{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Fork of another team's capsule: %v, want not found", err)
	}
	// Quota 3, one running: two forks fit, the third is refused alone.
	_, forks, err := f.svc.Fork(ctx, team, src.ID, ForkOptions{Count: 3})
	if err != nil || len(forks) != 3 || forks[0].Err != nil || forks[1].Err != nil || !errors.Is(forks[2].Err, errdefs.ErrExhausted) {
		t.Fatalf("Fork(3) at a quota of 3: %+v, %v; want two forks and the third refused", forks, err)
	}
	// Nothing fits: the refusal is the call's error.
	if _, _, err := f.svc.Fork(ctx, team, src.ID, ForkOptions{}); !errors.Is(err, errdefs.ErrExhausted) {
		t.Errorf("Fork over the quota: %v, want exhausted", err)
	}
	if _, err := f.svc.Pause(ctx, team, src.ID, PauseOptions{Memory: true}); err != nil {
		t.Fatal(err)
	}
	f.settle(t, src.ID, nestbox.StatusPaused)
	if _, _, err := f.svc.Fork(ctx, team, src.ID, ForkOptions{}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("Fork of a paused capsule: %v, want conflict", err)
	}
}
