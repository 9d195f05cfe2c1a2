package agent

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/proto/agentpb"
)

// In these tests envd's memory is its settings: the env vars and token
// /init gave it. A pause with memory keeps them (the fake driver's image
// holds them); a fresh boot has only what the agent's /init sends again.

// setEnvd sends /init to sandbox id's envd through ta's proxy, as a
// tenant's SDK could: settings only envd's memory holds.
func (ta *testAgent) setEnvd(t testing.TB, id, token, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ta.envdBase(id)+"/init", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: envdAuth{token: token}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("envd /init: %s", resp.Status)
	}
}

// wantPausedOnDisk checks what a sandbox paused on disk holds: no
// runtime, no envd, no network on the host but its slot.
func (w *fakeWorld) wantPausedOnDisk(t testing.TB, ta *testAgent, id, address, when string) {
	t.Helper()
	if st := ta.runtimeState(t, id); st != driver.StateNotFound {
		t.Fatalf("%s: runtime %s, want none", when, st)
	}
	if _, held, built := w.net.slotOf(id); !held || built {
		t.Fatalf("%s: network slot held %v, built on the host %v; want only the slot", when, held, built)
	}
	if !refused(address) {
		t.Fatalf("%s: envd still listens at %s", when, address)
	}
}

// TestFakePauseResumeDisk pauses to disk and resumes, with memory (envd's
// settings survive) and filesystem-only (a fresh boot, initialised as at
// create); it checks the snapshot's files, the state transitions and the
// refusals (pausing twice, resuming a running sandbox), then that a
// snapshot that fails its check is never restored.
func TestFakePauseResumeDisk(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, diskTier)
	envs := map[string]string{"GREETING": "hi"}
	sb := ta.create(t, &agentpb.SandboxConfig{AccessToken: "tok", EnvVars: envs, TimeoutSeconds: 600})
	ta.setEnvd(t, sb.Id, "tok", `{"envVars":{"LATER":"1"}}`)
	inMemory := map[string]string{"GREETING": "hi", "LATER": "1"}

	p, err := ta.pauseRPC(sb.Id, false)
	if err != nil {
		t.Fatalf("pause: %v", err)
	}
	if p.State != agentpb.SandboxState_SANDBOX_STATE_PAUSED || p.PauseTier != tierDisk || p.PausedAt == nil || p.EndAt != nil {
		t.Fatalf("paused sandbox: %v", p)
	}
	w.wantPausedOnDisk(t, ta, sb.Id, sb.Address, "paused")
	snap := filepath.Join(w.dataDir, "sandboxes", sb.Id, snapshotDirName)
	if err := verifySnapshot(ta.lookup(sb.Id)); err != nil {
		t.Fatalf("snapshot of the pause: %v", err)
	}
	if rec, err := readState(filepath.Join(w.dataDir, "sandboxes", sb.Id)); err != nil || rec.Status != statusPaused || rec.PauseTier != tierDisk || rec.Network == nil {
		t.Fatalf("state file while paused: %+v, %v", rec, err)
	}
	if _, err := ta.pauseRPC(sb.Id, false); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("second pause: got %v, want failed_precondition", err)
	}
	if l := ta.list(); len(l) != 1 || l[0].State != agentpb.SandboxState_SANDBOX_STATE_PAUSED {
		t.Fatalf("list while paused: %v", l)
	}
	if code, _ := ta.envdGet(t, sb.Id, "tok", "/health"); code != http.StatusBadGateway {
		t.Fatalf("proxy to a paused sandbox: %d, want 502", code)
	}

	r, err := ta.resumeRPC(sb.Id)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if r.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING || r.Address != sb.Address || r.EndAt == nil {
		t.Fatalf("resumed sandbox: %v (address before %s)", r, sb.Address)
	}
	ta.wantEnvs(t, sb.Id, "tok", inMemory, "after a resume from disk")
	if _, err := os.Stat(snap); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("snapshot kept after resume: %v", err)
	}
	if _, err := ta.resumeRPC(sb.Id); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("resume of a running sandbox: got %v, want failed_precondition", err)
	}

	// Filesystem only: the layer stays, envd starts afresh and gets the
	// create's settings again.
	if p, err := ta.pauseRPC(sb.Id, true); err != nil || !p.FilesystemOnly {
		t.Fatalf("filesystem-only pause: %v, %v", p, err)
	}
	w.wantPausedOnDisk(t, ta, sb.Id, sb.Address, "paused without memory")
	if _, err := os.Stat(filepath.Join(snap, imagesDirName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a filesystem-only pause wrote images: %v", err)
	}
	if _, err := ta.resumeRPC(sb.Id); err != nil {
		t.Fatalf("filesystem-only resume: %v", err)
	}
	ta.wantEnvs(t, sb.Id, "tok", envs, "after a filesystem-only resume")

	// A damaged image: data_loss, error with the files kept, never started.
	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatal(err)
	}
	images := filepath.Join(snap, imagesDirName)
	entries, err := os.ReadDir(images)
	if err != nil || len(entries) == 0 {
		t.Fatalf("images: %v, %v", entries, err)
	}
	img := filepath.Join(images, entries[0].Name())
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(img, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.resumeRPC(sb.Id); connect.CodeOf(err) != connect.CodeDataLoss {
		t.Fatalf("resume of a damaged snapshot: got %v, want data_loss", err)
	}
	if got := ta.getRPC(t, sb.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_ERROR || got.Error == "" {
		t.Fatalf("after a damaged snapshot: %v", got)
	}
	if _, err := os.Stat(img); err != nil {
		t.Fatalf("damaged image not kept: %v", err)
	}
	w.wantPausedOnDisk(t, ta, sb.Id, sb.Address, "after a damaged snapshot")
	if _, err := ta.resumeRPC(sb.Id); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("resume of a sandbox in error: got %v, want failed_precondition", err)
	}
	ta.destroyRPC(t, sb.Id)
	w.assertEmpty(t, "after destroying a sandbox in error")
}

// TestFakePauseMemoryTier pauses into the memory tier (runtime frozen,
// network and memory kept, no snapshot), resumes from it, demotes a
// second pause to disk and resumes from there; then a short grace period
// demotes on its own, under Run.
func TestFakePauseMemoryTier(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, memoryTier)
	envs := map[string]string{"GREETING": "hi"}
	sb := ta.create(t, &agentpb.SandboxConfig{AccessToken: "tok", EnvVars: envs, TimeoutSeconds: 600})
	ta.setEnvd(t, sb.Id, "tok", `{"envVars":{"LATER":"1"}}`)
	inMemory := map[string]string{"GREETING": "hi", "LATER": "1"}
	snap := filepath.Join(w.dataDir, "sandboxes", sb.Id, snapshotDirName)

	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatalf("pause: %v", err)
	}
	ta.wantPaused(t, sb.Id, tierMemory, "after a pause")
	if st := ta.runtimeState(t, sb.Id); st != driver.StatePaused {
		t.Fatalf("runtime of a memory-tier sandbox: %s, want paused", st)
	}
	if _, held, built := w.net.slotOf(sb.Id); !held || !built {
		t.Fatalf("network of a memory-tier sandbox: slot %v, built %v; want both kept", held, built)
	}
	if _, err := os.Stat(snap); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a memory-tier pause wrote a snapshot: %v", err)
	}
	capacity, err := ta.measure(false)
	if err != nil {
		t.Fatal(err)
	}
	capacity.memAvail, capacity.memCommitLimit = capacity.memReserve+1<<30, 256<<20
	ta.mu.Lock()
	counted := ta.admitMemory(capacity, nil, 1)
	ta.mu.Unlock()
	if counted == nil {
		t.Fatal("admission does not count the memory a memory-tier sandbox holds")
	}
	if _, err := ta.resumeRPC(sb.Id); err != nil {
		t.Fatalf("resume from memory: %v", err)
	}
	ta.wantEnvs(t, sb.Id, "tok", inMemory, "after a resume from memory")

	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatalf("second pause: %v", err)
	}
	if err := ta.demoteNow(t, sb.Id); err != nil {
		t.Fatalf("demote: %v", err)
	}
	ta.wantPaused(t, sb.Id, tierDisk, "after the demotion")
	w.wantPausedOnDisk(t, ta, sb.Id, sb.Address, "after the demotion")
	if _, err := ta.resumeRPC(sb.Id); err != nil {
		t.Fatalf("resume after the demotion: %v", err)
	}
	ta.wantEnvs(t, sb.Id, "tok", inMemory, "after a resume from disk")
	ta.destroyRPC(t, sb.Id)

	// The grace period ends: the sweep moves it to disk.
	ta.stop()
	tb := w.startAgent(t, func(c *Config) { c.PauseMemoryGrace = 20 * time.Millisecond })
	sb = tb.create(t, nil)
	if _, err := tb.pauseRPC(sb.Id, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "demotion at the end of the grace period", func() bool {
		return tb.getRPC(t, sb.Id).PauseTier == tierDisk
	})
	w.wantPausedOnDisk(t, tb, sb.Id, sb.Address, "after the grace period")
}

// TestFakePauseResumeFailureInjection fails every step of a disk pause
// (the sandbox runs, envd's memory intact, no snapshot left) and of a
// resume from disk (it stays paused, nothing started), then every step of
// a memory-tier pause, of a resume from memory and of a demotion (it stays
// paused in memory, frozen, no snapshot left), and at the end checks that
// a destroy leaves nothing.
func TestFakePauseResumeFailureInjection(t *testing.T) {
	w := newFakeWorld(t)
	var failAt atomic.Value
	ta := w.startAgent(t, func(c *Config) {
		c.failAt = failHook(&failAt)
		c.PauseMemoryGrace = -1
	})
	envs := map[string]string{"GREETING": "hi"}
	sb := ta.create(t, &agentpb.SandboxConfig{AccessToken: "tok", EnvVars: envs, TimeoutSeconds: 600})
	snap := filepath.Join(w.dataDir, "sandboxes", sb.Id, snapshotDirName)
	noSnapshot := func(when string) {
		t.Helper()
		if _, err := os.Stat(snap); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: partial snapshot kept (%v)", when, err)
		}
	}
	for _, step := range pauseSteps {
		failAt.Store(step)
		if _, err := ta.pauseRPC(sb.Id, false); !injected(err) {
			t.Fatalf("pause failing at %q: got %v, want the injected error", step, err)
		}
		failAt.Store("")
		when := "after a pause failing at " + step
		if got := ta.getRPC(t, sb.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING || got.EndAt == nil {
			t.Fatalf("%s: %v, want running with an end of life", when, got)
		}
		if _, held, built := w.net.slotOf(sb.Id); !held || !built {
			t.Fatalf("%s: network slot %v, built %v", when, held, built)
		}
		noSnapshot(when)
		ta.wantEnvs(t, sb.Id, "tok", envs, when)
	}
	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatalf("pause: %v", err)
	}
	for _, step := range resumeSteps {
		failAt.Store(step)
		if _, err := ta.resumeRPC(sb.Id); !injected(err) {
			t.Fatalf("resume failing at %q: got %v, want the injected error", step, err)
		}
		failAt.Store("")
		when := "after a resume failing at " + step
		ta.wantPaused(t, sb.Id, tierDisk, when)
		w.wantPausedOnDisk(t, ta, sb.Id, sb.Address, when)
		if err := verifySnapshot(ta.lookup(sb.Id)); err != nil {
			t.Fatalf("%s: snapshot: %v", when, err)
		}
	}
	if _, err := ta.resumeRPC(sb.Id); err != nil {
		t.Fatalf("resume: %v", err)
	}
	ta.wantEnvs(t, sb.Id, "tok", envs, "after the resume")

	// The memory tier, on a new agent over the same host.
	ta.kill()
	w.net.restart()
	tb := w.startAgent(t, func(c *Config) {
		c.failAt = failHook(&failAt)
		memoryTier(c)
	})
	for _, step := range memoryPauseSteps {
		failAt.Store(step)
		if _, err := tb.pauseRPC(sb.Id, false); !injected(err) {
			t.Fatalf("memory pause failing at %q: got %v, want the injected error", step, err)
		}
		failAt.Store("")
		when := "after a memory pause failing at " + step
		if got := tb.getRPC(t, sb.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
			t.Fatalf("%s: state %v, want running", when, got.State)
		}
		if st := tb.runtimeState(t, sb.Id); st != driver.StateRunning {
			t.Fatalf("%s: runtime %s, want running", when, st)
		}
		tb.wantEnvs(t, sb.Id, "tok", envs, when)
	}
	if _, err := tb.pauseRPC(sb.Id, false); err != nil {
		t.Fatalf("memory pause: %v", err)
	}
	frozen := func(when string) {
		t.Helper()
		tb.wantPaused(t, sb.Id, tierMemory, when)
		if st := tb.runtimeState(t, sb.Id); st != driver.StatePaused {
			t.Fatalf("%s: runtime %s, want paused", when, st)
		}
		noSnapshot(when)
	}
	for _, step := range memoryResumeSteps {
		failAt.Store(step)
		if _, err := tb.resumeRPC(sb.Id); !injected(err) {
			t.Fatalf("resume from memory failing at %q: got %v, want the injected error", step, err)
		}
		failAt.Store("")
		frozen("after a resume from memory failing at " + step)
	}
	for _, step := range demoteSteps {
		failAt.Store(step)
		if err := tb.demoteNow(t, sb.Id); !injected(err) {
			t.Fatalf("demotion failing at %q: got %v, want the injected error", step, err)
		}
		failAt.Store("")
		frozen("after a demotion failing at " + step)
		if _, held, built := w.net.slotOf(sb.Id); !held || !built {
			t.Fatalf("after a demotion failing at %q: network slot %v, built %v; want both", step, held, built)
		}
	}
	if err := tb.demoteNow(t, sb.Id); err != nil {
		t.Fatalf("demote: %v", err)
	}
	if _, err := tb.resumeRPC(sb.Id); err != nil {
		t.Fatalf("resume: %v", err)
	}
	tb.wantEnvs(t, sb.Id, "tok", envs, "after the last resume")
	tb.destroyRPC(t, sb.Id)
	w.assertEmpty(t, "after the destroy")
}

// TestFakeResumeAfterReboot resumes a sandbox paused on disk after its
// layer was unmounted (as a reboot of the host does) and a new agent
// started: the layer is mounted again before the restore.
func TestFakeResumeAfterReboot(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, diskTier)
	sb := ta.create(t, &agentpb.SandboxConfig{AccessToken: "tok"})
	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatal(err)
	}
	ta.kill()
	w.layers.reboot()
	w.net.restart()
	tb := w.startAgent(t, diskTier)
	tb.wantPaused(t, sb.Id, tierDisk, "after a reboot")
	if _, err := tb.resumeRPC(sb.Id); err != nil {
		t.Fatalf("resume after a reboot: %v", err)
	}
	w.layers.mu.Lock()
	n := len(w.layers.held)
	w.layers.mu.Unlock()
	if n != 1 {
		t.Fatalf("after the resume %d layers are mounted, want 1", n)
	}
	if code, _ := tb.envdGet(t, sb.Id, "tok", "/health"); code != http.StatusNoContent {
		t.Fatalf("envd after a resume after a reboot: %d", code)
	}
}
