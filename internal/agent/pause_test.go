package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/processpb/processpbconnect"
)

// pauseWorld is what a sandbox holds that a pause must keep: files on its
// disk, data in its memory (a tmpfs under /dev lives in the sandbox's
// memory, so it is in the memory image) and a counter process.
type pauseWorld struct {
	files map[string]string // path -> sha256
	mem   string            // sha256 of the in-memory pattern
	count int               // last counter value seen
	// totals for the report
	filesChecked, memBytes int
	first                  int
}

const memPatternMiB = 8

func newPauseWorld(t testing.TB, pc processpbconnect.ProcessClient) *pauseWorld {
	t.Helper()
	w := &pauseWorld{files: map[string]string{}}
	mustSh(t, pc, "mkdir -p /root/data && for i in 1 2 3; do head -c 65536 /dev/urandom > /root/data/f$i; done")
	for i := 1; i <= 3; i++ {
		p := fmt.Sprintf("/root/data/f%d", i)
		w.files[p] = strings.Fields(mustSh(t, pc, "sha256sum "+p))[0]
	}
	// The counter is replaced by rename, never truncated, so that a read
	// cannot see it empty.
	mustSh(t, pc, fmt.Sprintf("mkdir -p /dev/hold && head -c %d /dev/urandom > /dev/hold/pattern", memPatternMiB<<20))
	w.mem = strings.Fields(mustSh(t, pc, "sha256sum /dev/hold/pattern"))[0]
	mustSh(t, pc, `setsid sh -c 'i=0; while true; do i=$((i+1)); echo $i > /dev/hold/counter.new; mv /dev/hold/counter.new /dev/hold/counter; sleep 0.05; done' </dev/null >/dev/null 2>&1 &`)
	w.count = w.readCounter(t, pc)
	w.first = w.count
	return w
}

func (w *pauseWorld) readCounter(t testing.TB, pc processpbconnect.ProcessClient) int {
	t.Helper()
	for range 100 {
		out, err := shOK(pc, "cat /dev/hold/counter 2>/dev/null")
		if n, cerr := strconv.Atoi(strings.TrimSpace(out)); err == nil && cerr == nil {
			return n
		}
	}
	t.Fatal("counter never readable")
	return 0
}

// check verifies everything in one command and writes one more file (so
// every cycle has new data on disk to keep).
func (w *pauseWorld) check(t testing.TB, pc processpbconnect.ProcessClient, cycle int) {
	t.Helper()
	var paths []string
	for p := range w.files {
		paths = append(paths, p)
	}
	next := fmt.Sprintf("/root/data/c%d", cycle%20)
	out := mustSh(t, pc, fmt.Sprintf("sha256sum %s /dev/hold/pattern && echo COUNT $(cat /dev/hold/counter) && head -c 4096 /dev/urandom > %s && sha256sum %s",
		strings.Join(paths, " "), next, next))
	got := map[string]string{}
	count := -1
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "COUNT":
			count, _ = strconv.Atoi(f[1])
		case len(f) == 2:
			if _, seen := got[f[1]]; !seen || f[1] == next {
				got[f[1]] = f[0]
			}
		}
	}
	for p, want := range w.files {
		if p == next {
			continue // being rewritten now
		}
		if got[p] != want {
			t.Fatalf("cycle %d: %s has sha256 %q, want %s", cycle, p, got[p], want)
		}
		w.filesChecked++
	}
	if got["/dev/hold/pattern"] != w.mem {
		t.Fatalf("cycle %d: memory pattern sha256 %q, want %s", cycle, got["/dev/hold/pattern"], w.mem)
	}
	w.memBytes += memPatternMiB << 20
	switch {
	case count < 0:
		t.Fatalf("cycle %d: no counter value in %q", cycle, out)
	case count <= w.count:
		// Over a whole pause and resume a running counter moves on.
		t.Fatalf("cycle %d: counter went from %d to %d: it went back or stopped", cycle, w.count, count)
	}
	w.count = count
	w.files[next] = got[next]
}

// diskTier configures an agent whose pauses go straight to disk.
func diskTier(c *Config) { c.PauseMemoryGrace = -1 }

func (ta *testAgent) pauseRPC(id string, fsOnly bool) (*agentpb.Sandbox, error) {
	resp, err := ta.client.PauseSandbox(context.Background(), connect.NewRequest(&agentpb.PauseSandboxRequest{Id: id, FilesystemOnly: fsOnly}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.Sandbox, nil
}

func (ta *testAgent) resumeRPC(id string) (*agentpb.Sandbox, error) {
	resp, err := ta.client.ResumeSandbox(context.Background(), connect.NewRequest(&agentpb.ResumeSandboxRequest{Id: id, TimeoutSeconds: 600}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.Sandbox, nil
}

func (ta *testAgent) getRPC(t testing.TB, id string) *agentpb.Sandbox {
	t.Helper()
	resp, err := ta.client.GetSandbox(context.Background(), connect.NewRequest(&agentpb.GetSandboxRequest{Id: id}))
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return resp.Msg.Sandbox
}

// TestPauseResume pauses a sandbox to disk and resumes it: files, memory
// and a running process survive; pausing twice is failed_precondition; a
// paused sandbox is listed as paused and holds no runtime or network.
func TestPauseResume(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", diskTier)
	sb := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 128, TimeoutSeconds: 600})
	pc := ta.process(sb.Id, "", "root")
	w := newPauseWorld(t, pc)

	p, err := ta.pauseRPC(sb.Id, false)
	if err != nil {
		t.Fatalf("pause: %v", err)
	}
	if p.State != agentpb.SandboxState_SANDBOX_STATE_PAUSED || p.PauseTier != tierDisk || p.PausedAt == nil || p.EndAt != nil {
		t.Fatalf("paused sandbox: got %v", p)
	}
	if _, err := ta.pauseRPC(sb.Id, false); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("second pause: got %v, want failed_precondition", err)
	}
	if got := ta.getRPC(t, sb.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_PAUSED {
		t.Fatalf("get while paused: %v", got.State)
	}
	if l := ta.list(); len(l) != 1 || l[0].State != agentpb.SandboxState_SANDBOX_STATE_PAUSED {
		t.Fatalf("list while paused: %v", l)
	}
	if nss, _ := filepath.Glob("/var/run/netns/" + testPrefix + "-" + sb.Id); len(nss) != 0 {
		t.Fatalf("network namespace kept while paused: %v", nss)
	}
	if procs := processesMentioning(filepath.Join(h.dataDir, "runsc")); len(procs) != 0 {
		t.Fatalf("runtime processes while paused: %v", procs)
	}

	r, err := ta.resumeRPC(sb.Id)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if r.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING || r.Address != sb.Address || r.EndAt == nil {
		t.Fatalf("resumed sandbox: got %v (address before %s)", r, sb.Address)
	}
	w.check(t, pc, 1)
	if _, err := os.Stat(filepath.Join(h.dataDir, "sandboxes", sb.Id, snapshotDirName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("snapshot kept after resume: %v", err)
	}
	if _, err := ta.resumeRPC(sb.Id); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("resume of a running sandbox: got %v, want failed_precondition", err)
	}

	// Filesystem only: the disk survives, the processes do not.
	if _, err := ta.pauseRPC(sb.Id, true); err != nil {
		t.Fatalf("filesystem-only pause: %v", err)
	}
	if got := ta.getRPC(t, sb.Id); !got.FilesystemOnly {
		t.Fatalf("filesystem-only pause not reported: %v", got)
	}
	if _, err := ta.resumeRPC(sb.Id); err != nil {
		t.Fatalf("filesystem-only resume: %v", err)
	}
	for path, want := range w.files {
		if got := strings.Fields(mustSh(t, pc, "sha256sum "+path))[0]; got != want {
			t.Fatalf("after a filesystem-only resume %s has sha256 %s, want %s", path, got, want)
		}
	}
	if out := mustSh(t, pc, "ls /dev/hold 2>/dev/null; true"); strings.TrimSpace(out) != "" {
		t.Fatalf("memory survived a filesystem-only pause: %q", out)
	}
	ta.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}

// TestPauseResumeFailureInjection fails a pause after each of its steps,
// then a resume after each of its steps, and checks after every failure
// that the sandbox is in a consistent state (running after a failed
// pause, paused after a failed resume) with its data intact, that no
// partial snapshot is left, and at the end that nothing at all is.
func TestPauseResumeFailureInjection(t *testing.T) {
	h := newTestHost(t)
	var failAt atomic.Value // string
	failAt.Store("")
	ta := h.startAgent(t, "", func(c *Config) {
		c.PauseMemoryGrace = -1
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
	for i, step := range pauseSteps {
		failAt.Store(step)
		if _, err := ta.pauseRPC(sb.Id, false); err == nil || !strings.Contains(err.Error(), errInjected.Error()) {
			t.Fatalf("pause failing at %q: got %v, want the injected error", step, err)
		}
		failAt.Store("")
		if got := ta.getRPC(t, sb.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
			t.Fatalf("after a pause failing at %q: state %v, want running", step, got.State)
		}
		if _, err := os.Stat(snap); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after a pause failing at %q: partial snapshot kept (%v)", step, err)
		}
		w.check(t, pc, i)
	}
	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatalf("pause: %v", err)
	}
	for _, step := range resumeSteps {
		failAt.Store(step)
		if _, err := ta.resumeRPC(sb.Id); err == nil || !strings.Contains(err.Error(), errInjected.Error()) {
			t.Fatalf("resume failing at %q: got %v, want the injected error", step, err)
		}
		failAt.Store("")
		if got := ta.getRPC(t, sb.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_PAUSED {
			t.Fatalf("after a resume failing at %q: state %v, want paused", step, got.State)
		}
		if procs := processesMentioning(filepath.Join(h.dataDir, "runsc")); len(procs) != 0 {
			t.Fatalf("after a resume failing at %q: runtime processes left: %v", step, procs)
		}
		if nss, _ := filepath.Glob("/var/run/netns/" + testPrefix + "-" + sb.Id); len(nss) != 0 {
			t.Fatalf("after a resume failing at %q: network namespace left: %v", step, nss)
		}
	}
	if _, err := ta.resumeRPC(sb.Id); err != nil {
		t.Fatalf("resume: %v", err)
	}
	w.check(t, pc, 100)
	ta.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}

// TestCorruptSnapshotIsNeverRestored flips a byte of a paused sandbox's
// memory image: the resume is data_loss, the sandbox is in error with its
// files kept, and a destroy still removes everything.
func TestCorruptSnapshotIsNeverRestored(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", diskTier)
	sb := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 128})
	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatalf("pause: %v", err)
	}
	images := filepath.Join(h.dataDir, "sandboxes", sb.Id, snapshotDirName, imagesDirName)
	entries, err := os.ReadDir(images)
	if err != nil || len(entries) == 0 {
		t.Fatalf("images: %v %v", entries, err)
	}
	var biggest string
	var size int64
	for _, e := range entries {
		if fi, _ := e.Info(); fi != nil && fi.Size() > size {
			biggest, size = filepath.Join(images, e.Name()), fi.Size()
		}
	}
	f, err := os.OpenFile(biggest, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, size/2)
	b[0] ^= 0xff
	f.WriteAt(b, size/2)
	f.Close()
	_, err = ta.resumeRPC(sb.Id)
	if connect.CodeOf(err) != connect.CodeDataLoss {
		t.Fatalf("resume of a corrupt snapshot: got %v, want data_loss", err)
	}
	got := ta.getRPC(t, sb.Id)
	if got.State != agentpb.SandboxState_SANDBOX_STATE_ERROR || got.Error == "" {
		t.Fatalf("after a corrupt snapshot: %v", got)
	}
	if _, err := os.Stat(biggest); err != nil {
		t.Fatalf("corrupt image not kept for inspection: %v", err)
	}
	if procs := processesMentioning(filepath.Join(h.dataDir, "runsc")); len(procs) != 0 {
		t.Fatalf("a corrupt snapshot was started: %v", procs)
	}
	ta.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}

// TestPauseSoak pauses and resumes one sandbox NESTBOX_SOAK_CYCLES times
// (200 by default; the long run is 1000), checking after every resume the
// sha256 of every file written so far, the in-memory pattern and that the
// counter process only went forward. No mismatch is allowed.
func TestPauseSoak(t *testing.T) {
	cycles := 200
	if v := os.Getenv("NESTBOX_SOAK_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("NESTBOX_SOAK_CYCLES=%q is not a positive number", v)
		}
		cycles = n
	}
	h := newTestHost(t)
	ta := h.startAgent(t, "", diskTier)
	sb := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 96, Vcpus: 1, TimeoutSeconds: 3600})
	pc := ta.process(sb.Id, "", "root")
	w := newPauseWorld(t, pc)
	start := time.Now()
	for i := 1; i <= cycles; i++ {
		if _, err := ta.pauseRPC(sb.Id, false); err != nil {
			t.Fatalf("cycle %d: pause: %v", i, err)
		}
		if _, err := ta.resumeRPC(sb.Id); err != nil {
			t.Fatalf("cycle %d: resume: %v", i, err)
		}
		w.check(t, pc, i)
	}
	t.Logf("soak: %d pause/resume cycles in %s, 0 mismatches; %d file checks, %d bytes of memory verified, counter %d -> %d",
		cycles, time.Since(start).Round(time.Second), w.filesChecked, w.memBytes, w.first, w.count)
	fmt.Printf("soak: cycles=%d files_checked=%d memory_bytes_verified=%d counter_first=%d counter_last=%d took=%s\n",
		cycles, w.filesChecked, w.memBytes, w.first, w.count, time.Since(start).Round(time.Second))
	ta.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}

// TestPausedSurvivesRestart pauses a sandbox, drops the agent as a crash
// would, and checks that a new agent on the same data dir lists it as
// paused and resumes it intact.
func TestPausedSurvivesRestart(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", diskTier)
	sb := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 128, TimeoutSeconds: 600})
	w := newPauseWorld(t, ta.process(sb.Id, "", "root"))
	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatalf("pause: %v", err)
	}
	ta.kill()
	tb := h.startAgent(t, "", diskTier)
	got := tb.getRPC(t, sb.Id)
	if got.State != agentpb.SandboxState_SANDBOX_STATE_PAUSED || got.PauseTier != tierDisk {
		t.Fatalf("after a restart: %v, want paused on disk", got)
	}
	if _, err := tb.resumeRPC(sb.Id); err != nil {
		t.Fatalf("resume after a restart: %v", err)
	}
	w.check(t, tb.process(sb.Id, "", "root"), 1)
	tb.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}
