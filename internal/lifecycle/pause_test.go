package lifecycle_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	. "nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/lifecycle/fakehost"
	"nestbox.dev/internal/proto/agentpb"
)

// running creates a capsule with req and waits until it runs.
func (f *fixture) running(t *testing.T, req nestbox.CreateCapsuleRequest) nestbox.Capsule {
	t.Helper()
	c, err := f.svc.Create(context.Background(), team, req)
	if err != nil {
		t.Fatal(err)
	}
	return f.settle(t, c.ID, nestbox.StatusRunning)
}

func TestPauseResume(t *testing.T) {
	for _, memory := range []bool{true, false} {
		t.Run(map[bool]string{true: "memory", false: "filesystem"}[memory], func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			c := f.running(t, nestbox.CreateCapsuleRequest{EnvVars: map[string]string{"SECRET": "s3"}, TimeoutSeconds: 600})
			release := f.agent.HoldPauses()
			got, err := f.svc.Pause(ctx, team, c.ID, PauseOptions{Memory: memory})
			if err != nil || got.Status != nestbox.StatusPausing {
				t.Fatalf("Pause = %s, %v; want pausing at once", got.Status, err)
			}
			if _, err := f.svc.Pause(ctx, team, c.ID, PauseOptions{Memory: memory}); !errors.Is(err, errdefs.ErrConflict) {
				t.Errorf("Pause of a pausing capsule: %v, want conflict", err)
			}
			release()
			f.settle(t, c.ID, nestbox.StatusPaused)
			if _, err := f.svc.Pause(ctx, team, c.ID, PauseOptions{}); !errors.Is(err, errdefs.ErrConflict) {
				t.Errorf("Pause of a paused capsule: %v, want conflict", err)
			}
			row, err := f.store.GetCapsule(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if row.PausedAt == nil || row.PausedMemory != memory || row.Remaining < 590*time.Second || row.Remaining > 600*time.Second {
				t.Errorf("paused row: PausedAt %v, PausedMemory %v, Remaining %v; want set, %v, about 600 s", row.PausedAt, row.PausedMemory, row.Remaining, memory)
			}
			if st := f.agent.State(c.ID); st != agentpb.SandboxState_SANDBOX_STATE_PAUSED {
				t.Errorf("host state %s, want paused", st)
			}
			got, err = f.svc.Resume(ctx, team, c.ID, ResumeOptions{Timeout: 42 * time.Second})
			if err != nil || got.Status != nestbox.StatusResuming {
				t.Fatalf("Resume = %s, %v; want resuming at once", got.Status, err)
			}
			back := f.settle(t, c.ID, nestbox.StatusRunning)
			if left := time.Until(*back.ExpiresAt); left > 42*time.Second || left < 30*time.Second {
				t.Errorf("after Resume(42 s) the capsule expires in %v", left)
			}
			rs := f.agent.Resumes()
			if len(rs) != 1 || rs[0].GetTimeoutSeconds() != 42 {
				t.Fatalf("resume requests %v, want one with 42 s", rs)
			}
			// Secrets go to the agent only for a fresh boot.
			if gotSecrets := rs[0].GetAccessToken() != "" && rs[0].GetEnvVars()["SECRET"] == "s3"; gotSecrets == memory {
				t.Errorf("resume after a pause with memory=%v carried secrets: %v", memory, gotSecrets)
			}
			want := []nestbox.Status{nestbox.StatusStarting, nestbox.StatusRunning, nestbox.StatusPausing, nestbox.StatusPaused, nestbox.StatusResuming, nestbox.StatusRunning}
			if got := statuses(t, f.store, c.ID); !slices.Equal(got, want) {
				t.Errorf("history %v, want %v", got, want)
			}
			if _, err := f.svc.Resume(ctx, team, c.ID, ResumeOptions{}); !errors.Is(err, errdefs.ErrConflict) {
				t.Errorf("Resume of a running capsule: %v, want conflict", err)
			}
		})
	}
}

// TestResumeKeepsFrozenLifetime: a resume without a timeout gives the
// capsule the lifetime it had left when it was paused.
func TestResumeKeepsFrozenLifetime(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.running(t, nestbox.CreateCapsuleRequest{TimeoutSeconds: 900})
	if _, err := f.svc.Pause(ctx, team, c.ID, PauseOptions{Memory: true}); err != nil {
		t.Fatal(err)
	}
	f.settle(t, c.ID, nestbox.StatusPaused)
	if _, err := f.svc.Resume(ctx, team, c.ID, ResumeOptions{}); err != nil {
		t.Fatal(err)
	}
	f.settle(t, c.ID, nestbox.StatusRunning)
	if rs := f.agent.Resumes(); len(rs) != 1 || rs[0].GetTimeoutSeconds() < 880 || rs[0].GetTimeoutSeconds() > 900 {
		t.Errorf("resume requests %v, want one with the ~900 s left at the pause", rs)
	}
}

// TestResumeDiscardingMemory: a resume that drops the memory (E2B's
// connect with memory false) asks the host for it and sends the secrets
// a fresh boot needs; a plain resume of a memory pause sends neither.
func TestResumeDiscardingMemory(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.running(t, nestbox.CreateCapsuleRequest{EnvVars: map[string]string{"K": "v"}})
	for i, discard := range []bool{false, true} {
		if _, err := f.svc.Pause(ctx, team, c.ID, PauseOptions{Memory: true}); err != nil {
			t.Fatal(err)
		}
		f.settle(t, c.ID, nestbox.StatusPaused)
		if _, err := f.svc.Resume(ctx, team, c.ID, ResumeOptions{DiscardMemory: discard}); err != nil {
			t.Fatal(err)
		}
		f.settle(t, c.ID, nestbox.StatusRunning)
		rs := f.agent.Resumes()
		if len(rs) != i+1 {
			t.Fatalf("resume requests %v, want %d", rs, i+1)
		}
		r := rs[i]
		if r.GetDiscardMemory() != discard || (r.GetAccessToken() != "") != discard || (r.GetEnvVars()["K"] == "v") != discard {
			t.Errorf("resume with discard=%v sent %v, want discard_memory and the secrets only when discarding", discard, r)
		}
	}
}

func TestPauseFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		gone bool
		want nestbox.Status
	}{
		{"still running", false, nestbox.StatusRunning},
		{"sandbox gone", true, nestbox.StatusError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			c := f.running(t, nestbox.CreateCapsuleRequest{})
			f.agent.FailNextPause(connect.NewError(connect.CodeInternal, errors.New("checkpoint failed")), tc.gone)
			if _, err := f.svc.Pause(context.Background(), team, c.ID, PauseOptions{Memory: true}); err != nil {
				t.Fatal(err)
			}
			got := f.settle(t, c.ID, tc.want)
			if tc.want == nestbox.StatusError && !strings.Contains(got.Error, "gone") {
				t.Errorf("error %q, want it to say the sandbox is gone", got.Error)
			}
			if n := len(statuses(t, f.store, c.ID)); n != 4 {
				t.Errorf("history %v, want starting, running, pausing, %s", statuses(t, f.store, c.ID), tc.want)
			}
		})
	}
}

func TestResumeFailure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		wantErr string
	}{
		{"data loss", connect.NewError(connect.CodeDataLoss, errors.New("memory image checksum mismatch")), "integrity check"},
		{"restore failed", connect.NewError(connect.CodeInternal, errors.New("restore failed")), "destroyed what it had restored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			c := f.running(t, nestbox.CreateCapsuleRequest{})
			if _, err := f.svc.Pause(ctx, team, c.ID, PauseOptions{Memory: true}); err != nil {
				t.Fatal(err)
			}
			f.settle(t, c.ID, nestbox.StatusPaused)
			f.agent.FailNextResume(tc.err)
			if _, err := f.svc.Resume(ctx, team, c.ID, ResumeOptions{}); err != nil {
				t.Fatal(err)
			}
			got := f.settle(t, c.ID, nestbox.StatusError)
			if !strings.Contains(got.Error, tc.wantErr) {
				t.Errorf("error %q, want it to contain %q", got.Error, tc.wantErr)
			}
		})
	}
}

// TestDestroyWhilePausing: a destroy during a pause wins; the pause's
// goroutine finishes it when the host answers.
func TestDestroyWhilePausing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.running(t, nestbox.CreateCapsuleRequest{})
	release := f.agent.HoldPauses()
	if _, err := f.svc.Pause(ctx, team, c.ID, PauseOptions{Memory: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.svc.Destroy(ctx, team, c.ID); err != nil || got.Status != nestbox.StatusStopping {
		t.Fatalf("Destroy while pausing = %s, %v", got.Status, err)
	}
	release()
	f.settle(t, c.ID, nestbox.StatusStopped)
	if f.agent.Has(c.ID) {
		t.Error("the host still has the sandbox")
	}
}

func TestEnsureRunning(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	auto := f.running(t, nestbox.CreateCapsuleRequest{AutoResume: true})
	manual := f.running(t, nestbox.CreateCapsuleRequest{})
	for _, c := range []nestbox.Capsule{auto, manual} {
		if _, err := f.svc.Pause(ctx, team, c.ID, PauseOptions{Memory: true}); err != nil {
			t.Fatal(err)
		}
		f.settle(t, c.ID, nestbox.StatusPaused)
	}
	got, h, err := f.svc.EnsureRunning(ctx, auto.ID)
	if err != nil || got.Status != nestbox.StatusRunning || h.ID != "h1" {
		t.Fatalf("EnsureRunning(auto-resume) = %s on %q, %v; want running on h1", got.Status, h.ID, err)
	}
	if st := f.agent.State(auto.ID); st != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
		t.Errorf("host state after auto-resume %s", st)
	}
	_, _, err = f.svc.Running(ctx, team, manual.ID)
	if !errors.Is(err, ErrPaused) || !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("Running(paused, no auto-resume): %v, want ErrPaused and conflict", err)
	}
	if _, _, err := f.svc.EnsureRunning(ctx, "nosuchcapsule0000000"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("EnsureRunning(unknown): %v, want not found", err)
	}
}

// TestHostAutoPause: the agent's "paused" event (auto-pause at the
// timeout) moves the capsule to paused through the state machine.
func TestHostAutoPause(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	noMemory := false
	c := f.running(t, nestbox.CreateCapsuleRequest{AutoPause: true, AutoPauseMemory: &noMemory, AutoResume: true})
	if !c.AutoPause || c.AutoPauseMemory || !c.AutoResume {
		t.Errorf("capsule options auto_pause %v, auto_pause_memory %v, auto_resume %v; want true, false, true", c.AutoPause, c.AutoPauseMemory, c.AutoResume)
	}
	resp, err := f.agent.GetSandbox(ctx, connect.NewRequest(&agentpb.GetSandboxRequest{Id: c.ID}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg := resp.Msg.GetSandbox().GetConfig(); !cfg.GetAutoPause() || !cfg.GetAutoPauseFilesystemOnly() {
		t.Errorf("agent config auto_pause %v, filesystem only %v; want both true", cfg.GetAutoPause(), cfg.GetAutoPauseFilesystemOnly())
	}
	f.agent.AutoPause(c.ID)
	if err := f.svc.HandleHostEvent(ctx, HostEvent{HostID: "h1", SandboxID: c.ID, Type: "paused", Reason: "timeout", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.Get(ctx, team, c.ID)
	if row, _ := f.store.GetCapsule(ctx, c.ID); row.PausedMemory {
		t.Error("an auto-pause without memory recorded paused_memory true")
	}
	if err != nil || got.Status != nestbox.StatusPaused || got.PausedAt == nil {
		t.Fatalf("after the paused event: %s (paused at %v), %v; want paused", got.Status, got.PausedAt, err)
	}
	evs, _ := f.svc.Events(ctx, team, c.ID)
	if last := evs[len(evs)-1]; !strings.Contains(last.Reason, "timeout") {
		t.Errorf("last event reason %q, want it to name the timeout", last.Reason)
	}
	// A second copy of the event changes nothing.
	if err := f.svc.HandleHostEvent(ctx, HostEvent{HostID: "h1", SandboxID: c.ID, Type: "paused", Reason: "timeout"}); err != nil {
		t.Errorf("repeated event: %v", err)
	}
	// The reconciler leaves a paused sandbox the agent lists alone.
	if err := f.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.svc.Get(ctx, team, c.ID); got.Status != nestbox.StatusPaused {
		t.Errorf("after reconcile: %s, want paused", got.Status)
	}
}

// TestReconcileStuckPause: a pause whose control plane died is resolved
// by asking the host.
func TestReconcileStuckPause(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.StuckAfter = time.Nanosecond })
	ctx := context.Background()
	c := f.running(t, nestbox.CreateCapsuleRequest{})
	release := f.agent.HoldPauses()
	defer release()
	if _, err := f.svc.Pause(ctx, team, c.ID, PauseOptions{Memory: true}); err != nil {
		t.Fatal(err)
	}
	// The host finished the pause, the answer never came back (the
	// agent is simulated by pausing directly).
	f.agent.AutoPause(c.ID)
	fresh, err := New(Config{Store: f.store, Events: f.events, Hosts: fakeHosts(f), StuckAfter: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close(time.Second)
	if err := fresh.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := fresh.Get(ctx, team, c.ID); got.Status != nestbox.StatusPaused {
		t.Errorf("after reconcile: %s, want paused", got.Status)
	}
}

func fakeHosts(f *fixture) Hosts { return fakehost.Hosts{Host: Host{ID: "h1", Agent: f.agent}} }

// TestConsumerABA: the fallback consumer does not re-apply a late event
// after the capsule's status has cycled back to the event's From (running
// → pausing → paused → resuming → running), because the generation the
// event was made from is gone; an event at the current generation, with
// every field of the change, is applied.
func TestConsumerABA(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.running(t, nestbox.CreateCapsuleRequest{})
	row, err := f.store.GetCapsule(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	staleGen := row.Generation + 1 // what running → pausing produces now
	if _, err := f.svc.Pause(ctx, team, c.ID, PauseOptions{Memory: true}); err != nil {
		t.Fatal(err)
	}
	f.settle(t, c.ID, nestbox.StatusPaused)
	if _, err := f.svc.Resume(ctx, team, c.ID, ResumeOptions{}); err != nil {
		t.Fatal(err)
	}
	f.settle(t, c.ID, nestbox.StatusRunning)
	runService(t, f)
	now := time.Now().UTC()
	stale := nestbox.CapsuleEvent{CapsuleID: c.ID, From: nestbox.StatusRunning, To: nestbox.StatusPausing, At: now, Generation: staleGen}
	// A marker after it, at the current generation: once the marker is
	// applied, the stale event has been seen (the stream is ordered).
	row, _ = f.store.GetCapsule(ctx, c.ID)
	pausedAt := now.Truncate(time.Microsecond)
	marker := nestbox.CapsuleEvent{CapsuleID: c.ID, From: nestbox.StatusRunning, To: nestbox.StatusPaused, At: now,
		Generation: row.Generation + 1, PausedAt: &pausedAt, PausedMemory: true, RemainingMS: 7000}
	// The in-process stream delivers only to subscribers of the moment,
	// and the consumer subscribes in the background: the pair is sent
	// again until the marker is applied. Sending the stale event again is
	// harmless to the check: applied once, it would leave the capsule
	// pausing, which refuses the marker.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		if i%25 == 0 {
			for _, ev := range []nestbox.CapsuleEvent{stale, marker} {
				if err := f.events.Publish(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
		}
		got, err := f.store.GetCapsule(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == nestbox.StatusPausing {
			t.Fatal("the stale running -> pausing event was applied after the status cycled (ABA)")
		}
		if got.Status == nestbox.StatusPaused {
			if got.Generation != row.Generation+1 || got.Remaining != 7*time.Second || got.PausedAt == nil || !got.PausedAt.Equal(pausedAt) {
				t.Errorf("marker applied with generation %d, remaining %v, paused at %v; want %d, 7s, %v", got.Generation, got.Remaining, got.PausedAt, row.Generation+1, pausedAt)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer did not apply the marker: %s", got.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHostMissing: a host silent for MissingAfter passes makes its
// running and paused capsules missing; when it answers again they go back
// to what it holds.
func TestHostMissing(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MissingAfter = 2 })
	ctx := context.Background()
	run := f.running(t, nestbox.CreateCapsuleRequest{})
	paused := f.running(t, nestbox.CreateCapsuleRequest{})
	if _, err := f.svc.Pause(ctx, team, paused.ID, PauseOptions{Memory: true}); err != nil {
		t.Fatal(err)
	}
	f.settle(t, paused.ID, nestbox.StatusPaused)
	f.agent.SetDown(true)
	for pass, want := range []nestbox.Status{nestbox.StatusRunning, nestbox.StatusMissing} {
		if err := f.svc.Reconcile(ctx); !errors.Is(err, errdefs.ErrUnavailable) {
			t.Fatalf("pass %d with the host down: %v, want unavailable", pass, err)
		}
		if got, _ := f.svc.Get(ctx, team, run.ID); got.Status != want {
			t.Errorf("after %d silent passes the running capsule is %s, want %s", pass+1, got.Status, want)
		}
	}
	if got, _ := f.svc.Get(ctx, team, paused.ID); got.Status != nestbox.StatusMissing {
		t.Errorf("the paused capsule of a silent host is %s, want missing", got.Status)
	}
	if _, _, err := f.svc.Running(ctx, team, run.ID); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("Running(missing): %v, want conflict", err)
	}
	f.agent.SetDown(false)
	if err := f.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		want nestbox.Status
	}{{run.ID, nestbox.StatusRunning}, {paused.ID, nestbox.StatusPaused}} {
		if got, _ := f.svc.Get(ctx, team, tc.id); got.Status != tc.want {
			t.Errorf("capsule %s after the host answers: %s, want %s", tc.id, got.Status, tc.want)
		}
	}
}

// TestEnsureRunningDuringPause: a request routed to a capsule with
// auto-resume while it pauses waits for the pause, resumes it, and gets
// it running.
func TestEnsureRunningDuringPause(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.running(t, nestbox.CreateCapsuleRequest{AutoResume: true})
	release := f.agent.HoldPauses()
	if _, err := f.svc.Pause(ctx, team, c.ID, PauseOptions{Memory: true}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		st  nestbox.Status
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, _, err := f.svc.EnsureRunning(ctx, c.ID)
		done <- result{got.Status, err}
	}()
	release()
	select {
	case r := <-done:
		if r.err != nil || r.st != nestbox.StatusRunning {
			t.Fatalf("EnsureRunning during a pause = %s, %v; want running", r.st, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("EnsureRunning during a pause did not return")
	}
	want := []nestbox.Status{nestbox.StatusStarting, nestbox.StatusRunning, nestbox.StatusPausing, nestbox.StatusPaused, nestbox.StatusResuming, nestbox.StatusRunning}
	if got := statuses(t, f.store, c.ID); !slices.Equal(got, want) {
		t.Errorf("history %v, want %v", got, want)
	}
}
