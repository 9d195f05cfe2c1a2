package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/proto/agentpb"
)

// memoryTier configures an agent whose pauses stay in memory until a test
// demotes them.
func memoryTier(c *Config) { c.PauseMemoryGrace = time.Hour }

// runtimeState is what the driver says of sandbox id.
func (ta *testAgent) runtimeState(t testing.TB, id string) driver.State {
	t.Helper()
	st, err := ta.driver.State(context.Background(), id)
	if err != nil {
		t.Fatalf("state of %s: %v", id, err)
	}
	return st
}

// demoteNow moves sandbox id from the memory tier to disk now, as the
// sweep does when its grace period is over.
func (ta *testAgent) demoteNow(t testing.TB, id string) error {
	t.Helper()
	sb := ta.lookup(id)
	ta.mu.Lock()
	sb.demoting = true
	ta.mu.Unlock()
	return ta.demote(context.Background(), sb)
}

func (ta *testAgent) wantPaused(t testing.TB, id, tier, when string) {
	t.Helper()
	got := ta.getRPC(t, id)
	if got.State != agentpb.SandboxState_SANDBOX_STATE_PAUSED || got.PauseTier != tier || got.PausedAt == nil || got.EndAt != nil {
		t.Fatalf("%s: got %v, want paused in the %s tier", when, got, tier)
	}
}

// TestPauseMemoryTier pauses into the memory tier (frozen, runtime and
// network kept, memory still held in admission), resumes from it, pauses
// again, demotes it to disk (runtime and network gone) and resumes from
// disk: files, memory and the counter survive every step.
func TestPauseMemoryTier(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", memoryTier)
	sb := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 128, TimeoutSeconds: 600})
	pc := ta.process(sb.Id, "", "root")
	w := newPauseWorld(t, pc)

	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatalf("pause: %v", err)
	}
	ta.wantPaused(t, sb.Id, tierMemory, "after a pause")
	if st := ta.runtimeState(t, sb.Id); st != driver.StatePaused {
		t.Fatalf("runtime of a memory-tier sandbox: %s, want paused", st)
	}
	if nss, _ := filepath.Glob("/var/run/netns/" + testPrefix + "-" + sb.Id); len(nss) != 1 {
		t.Fatalf("network namespace of a memory-tier sandbox: %v, want it kept", nss)
	}
	if _, err := os.Stat(filepath.Join(h.dataDir, "sandboxes", sb.Id, snapshotDirName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a memory-tier pause wrote a snapshot: %v", err)
	}
	// It still holds its memory: admission counts it (and only it
	// here: left out, 1 MiB more fits).
	capacity, err := ta.measure(false)
	if err != nil {
		t.Fatal(err)
	}
	capacity.memAvail, capacity.memCommitLimit = capacity.memReserve+1<<30, 128<<20
	ta.mu.Lock()
	counted := ta.admitMemory(capacity, nil, 1)
	without := ta.admitMemory(capacity, ta.sandboxes[sb.Id], 1)
	ta.mu.Unlock()
	if counted == nil || without != nil {
		t.Fatalf("admission next to a memory-tier sandbox: %v; without it: %v", counted, without)
	}

	if _, err := ta.resumeRPC(sb.Id); err != nil {
		t.Fatalf("resume from memory: %v", err)
	}
	w.check(t, pc, 1)

	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatalf("second pause: %v", err)
	}
	if err := ta.demoteNow(t, sb.Id); err != nil {
		t.Fatalf("demote: %v", err)
	}
	ta.wantPaused(t, sb.Id, tierDisk, "after the demotion")
	if st := ta.runtimeState(t, sb.Id); st != driver.StateNotFound {
		t.Fatalf("runtime after the demotion: %s, want none", st)
	}
	if procs := processesMentioning(filepath.Join(h.dataDir, "runsc")); len(procs) != 0 {
		t.Fatalf("runtime processes after the demotion: %v", procs)
	}
	if nss, _ := filepath.Glob("/var/run/netns/" + testPrefix + "-" + sb.Id); len(nss) != 0 {
		t.Fatalf("network namespace kept after the demotion: %v", nss)
	}
	if _, err := ta.resumeRPC(sb.Id); err != nil {
		t.Fatalf("resume from disk after the demotion: %v", err)
	}
	w.check(t, pc, 2)

	// A destroy of a sandbox frozen in memory removes everything.
	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatalf("third pause: %v", err)
	}
	ta.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}

// TestPauseMemoryGraceExpires pauses with a short grace period and waits
// for the sweep to move the sandbox to disk on its own.
func TestPauseMemoryGraceExpires(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", func(c *Config) { c.PauseMemoryGrace = 300 * time.Millisecond })
	sb := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 128, TimeoutSeconds: 600})
	pc := ta.process(sb.Id, "", "root")
	w := newPauseWorld(t, pc)
	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatalf("pause: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for ta.getRPC(t, sb.Id).PauseTier != tierDisk {
		if time.Now().After(deadline) {
			t.Fatalf("still in memory a minute after a grace period of 300 ms: %v", ta.getRPC(t, sb.Id))
		}
		time.Sleep(50 * time.Millisecond)
	}
	ta.wantPaused(t, sb.Id, tierDisk, "after the grace period")
	if _, err := ta.resumeRPC(sb.Id); err != nil {
		t.Fatalf("resume: %v", err)
	}
	w.check(t, pc, 1)
	ta.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}

// TestPauseMemoryPressureDemotes pauses into the memory tier with a grace
// period of an hour, then makes the host short of memory (MemAvailable
// under the reserve): the sweep moves the sandbox to disk at once, and it
// resumes intact from there.
func TestPauseMemoryPressureDemotes(t *testing.T) {
	h := newTestHost(t)
	var short atomic.Bool
	ta := h.startAgent(t, "", func(c *Config) {
		c.PauseMemoryGrace = time.Hour
		c.MemoryReserveBytes = 1 << 30
		c.meminfo = func() (map[string]uint64, error) {
			m, err := readMeminfo()
			if err == nil && short.Load() {
				m["MemAvailable"] = 512 << 20
			}
			return m, err
		}
	})
	sb := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 128, TimeoutSeconds: 600})
	pc := ta.process(sb.Id, "", "root")
	w := newPauseWorld(t, pc)
	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatalf("pause: %v", err)
	}
	// Without pressure it stays in memory over many sweeps (every 200 ms).
	time.Sleep(time.Second)
	ta.wantPaused(t, sb.Id, tierMemory, "a second after the pause, without pressure")

	short.Store(true)
	deadline := time.Now().Add(time.Minute)
	for ta.getRPC(t, sb.Id).PauseTier != tierDisk {
		if time.Now().After(deadline) {
			t.Fatalf("still in memory a minute after MemAvailable fell under the reserve: %v", ta.getRPC(t, sb.Id))
		}
		time.Sleep(50 * time.Millisecond)
	}
	ta.wantPaused(t, sb.Id, tierDisk, "under memory pressure")
	if st := ta.runtimeState(t, sb.Id); st != driver.StateNotFound {
		t.Fatalf("runtime after the demotion: %s, want none", st)
	}
	short.Store(false)
	if _, err := ta.resumeRPC(sb.Id); err != nil {
		t.Fatalf("resume: %v", err)
	}
	w.check(t, pc, 1)
	ta.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}

// TestPauseMemoryTierFailureInjection fails a memory-tier pause after each
// of its steps (the sandbox runs), a resume from memory after each of its
// steps (it stays paused in memory) and a demotion after each of its
// steps (it stays paused in memory, frozen, with no snapshot left), and
// checks the sandbox's data after every failure and nothing left at the
// end.
func TestPauseMemoryTierFailureInjection(t *testing.T) {
	h := newTestHost(t)
	var failAt atomic.Value // string
	failAt.Store("")
	ta := h.startAgent(t, "", func(c *Config) {
		memoryTier(c)
		c.failAt = func(step string) error {
			if step == failAt.Load().(string) {
				return errInjected
			}
			return nil
		}
	})
	sb := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 128, TimeoutSeconds: 600})
	pc := ta.process(sb.Id, "", "root")
	w := newPauseWorld(t, pc)
	snap := filepath.Join(h.dataDir, "sandboxes", sb.Id, snapshotDirName)
	injected := func(err error) bool { return err != nil && strings.Contains(err.Error(), errInjected.Error()) }
	cycle := 0
	for _, step := range memoryPauseSteps {
		failAt.Store(step)
		if _, err := ta.pauseRPC(sb.Id, false); !injected(err) {
			t.Fatalf("pause failing at %q: got %v, want the injected error", step, err)
		}
		failAt.Store("")
		if got := ta.getRPC(t, sb.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
			t.Fatalf("after a pause failing at %q: state %v, want running", step, got.State)
		}
		if st := ta.runtimeState(t, sb.Id); st != driver.StateRunning {
			t.Fatalf("after a pause failing at %q: runtime %s, want running", step, st)
		}
		cycle++
		w.check(t, pc, cycle)
	}
	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatalf("pause: %v", err)
	}
	for _, step := range memoryResumeSteps {
		failAt.Store(step)
		if _, err := ta.resumeRPC(sb.Id); !injected(err) {
			t.Fatalf("resume failing at %q: got %v, want the injected error", step, err)
		}
		failAt.Store("")
		ta.wantPaused(t, sb.Id, tierMemory, "after a resume failing at "+step)
		if st := ta.runtimeState(t, sb.Id); st != driver.StatePaused {
			t.Fatalf("after a resume failing at %q: runtime %s, want paused", step, st)
		}
	}
	for _, step := range demoteSteps {
		failAt.Store(step)
		if err := ta.demoteNow(t, sb.Id); !injected(err) {
			t.Fatalf("demotion failing at %q: got %v, want the injected error", step, err)
		}
		failAt.Store("")
		ta.wantPaused(t, sb.Id, tierMemory, "after a demotion failing at "+step)
		if st := ta.runtimeState(t, sb.Id); st != driver.StatePaused {
			t.Fatalf("after a demotion failing at %q: runtime %s, want paused", step, st)
		}
		if _, err := os.Stat(snap); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after a demotion failing at %q: partial snapshot kept (%v)", step, err)
		}
		// Resumed and paused again: the data is intact after every failure.
		if _, err := ta.resumeRPC(sb.Id); err != nil {
			t.Fatalf("resume after a demotion failing at %q: %v", step, err)
		}
		cycle++
		w.check(t, pc, cycle)
		if _, err := ta.pauseRPC(sb.Id, false); err != nil {
			t.Fatalf("pause after a demotion failing at %q: %v", step, err)
		}
	}
	if err := ta.demoteNow(t, sb.Id); err != nil {
		t.Fatalf("demote: %v", err)
	}
	if _, err := ta.resumeRPC(sb.Id); err != nil {
		t.Fatalf("resume: %v", err)
	}
	w.check(t, pc, cycle+1)
	ta.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}

// TestPausedInMemorySurvivesRestart pauses a sandbox in memory, drops the
// agent as a crash would, and checks that a new agent adopts it paused in
// memory (still frozen) and resumes it intact.
func TestPausedInMemorySurvivesRestart(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", memoryTier)
	sb := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 128, TimeoutSeconds: 600})
	w := newPauseWorld(t, ta.process(sb.Id, "", "root"))
	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatalf("pause: %v", err)
	}
	ta.kill()
	tb := h.startAgent(t, "", memoryTier)
	tb.wantPaused(t, sb.Id, tierMemory, "after a restart")
	if st := tb.runtimeState(t, sb.Id); st != driver.StatePaused {
		t.Fatalf("runtime after a restart: %s, want paused", st)
	}
	if _, err := tb.resumeRPC(sb.Id); err != nil {
		t.Fatalf("resume after a restart: %v", err)
	}
	w.check(t, tb.process(sb.Id, "", "root"), 1)
	tb.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}
