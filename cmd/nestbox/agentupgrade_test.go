package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nestbox.dev"
)

// TestAgentUpgrade is docs/fleet.md's upgrade of an agent: with a running
// capsule (a background process, a file), a capsule paused with its
// memory and creates in flight, the agent gets SIGTERM, its binary is
// replaced by another file and it starts again on the same data
// directory. The running capsule keeps its process and file and answers
// exec; the paused one resumes with its memory; each create that was in
// flight ends running or error (none stays starting), and the host runs
// no sandbox without a live capsule.
func TestAgentUpgrade(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	agent, _, client := startSplitPlatform(t, "nbu", "10.218.0.0/24", "/nestbox-e2e-upgrade")
	req := nestbox.CreateCapsuleRequest{Template: "minimal", MemoryMB: 128}
	running, err := client.Create(ctx, req)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	sh := func(h *nestbox.Handle, script string) string {
		t.Helper()
		res, err := h.Exec(ctx, []string{"sh", "-c", script})
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("%q in %s: %+v, %v", script, h.ID(), res, err)
		}
		return strings.TrimSpace(res.Stdout)
	}
	sh(running, "echo kept > /tmp/upgrade.txt")
	pid, err := running.Start(ctx, []string{"sleep", "3600"})
	if err != nil {
		t.Fatal(err)
	}
	paused, err := client.Create(ctx, req)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	// A shell variable lives only in memory: the resumed capsule answers
	// it only if its memory came back.
	if _, err := paused.Start(ctx, []string{"sh", "-c", "v=in-memory; while :; do echo $v > /tmp/mem.txt; sleep 0.2; done"}); err != nil {
		t.Fatal(err)
	}
	if _, err := paused.Pause(ctx, true); err != nil {
		t.Fatalf("pause: %v", err)
	}

	var inFlight []*nestbox.Handle
	for range 3 {
		h, err := client.Create(ctx, req, nestbox.NoWait())
		if err != nil {
			t.Fatal(err)
		}
		inFlight = append(inFlight, h)
	}
	// The upgrade: SIGTERM at once, a new binary, the same data directory.
	stopped := time.Now()
	agent.stop()
	t.Logf("the agent stopped %v after SIGTERM", time.Since(stopped).Round(time.Millisecond))
	upgraded := filepath.Join(t.TempDir(), "nestbox-upgraded")
	copyFile(t, agent.bin, upgraded)
	agent.bin = upgraded
	agent.start()
	t.Logf("the upgraded agent answered %v after the SIGTERM", time.Since(stopped).Round(time.Millisecond))

	if got := sh(running, "cat /tmp/upgrade.txt"); got != "kept" {
		t.Errorf("the running capsule's file after the upgrade: %q, want kept", got)
	}
	procs, err := running.Processes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range procs {
		found = found || p.Pid == pid
	}
	if !found {
		t.Errorf("the running capsule's background process %d is gone after the upgrade: %+v", pid, procs)
	}
	if _, err := paused.Resume(ctx, 5*time.Minute); err != nil {
		t.Fatalf("resume after the upgrade: %v", err)
	}
	if got := sh(paused, "sleep 0.5; cat /tmp/mem.txt"); got != "in-memory" {
		t.Errorf("the paused capsule after the upgrade and a resume: %q, want in-memory", got)
	}
	for _, h := range inFlight {
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		_, err := h.Wait(wctx, nestbox.StatusRunning)
		wcancel()
		var cerr *nestbox.CapsuleError
		switch {
		case err == nil:
			if got := sh(h, "echo ok"); got != "ok" {
				t.Errorf("exec in %s: %q", h.ID(), got)
			}
		case errors.As(err, &cerr) && cerr.Capsule.Status == nestbox.StatusError:
			t.Logf("create %s in flight during the upgrade failed: %s", h.ID(), cerr.Capsule.Error)
		default:
			t.Errorf("create %s in flight during the upgrade: %v, want running or error", h.ID(), err)
		}
	}
	for _, h := range append([]*nestbox.Handle{running, paused}, inFlight...) {
		if _, err := h.Kill(ctx); err != nil {
			t.Errorf("destroy %s: %v", h.ID(), err)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
