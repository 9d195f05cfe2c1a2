package agent

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/driver/gvisor"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/processpb"
)

// TestForkBombStaysInside runs a fork bomb in one sandbox. Whatever happens
// to that sandbox (gVisor ends it when it reaches its host pids limit),
// another sandbox keeps answering, the host's process count stays bounded
// by the limit, and destroying both leaves nothing behind. The pids limit
// is lowered for the test so the bomb hits it quickly on 2 cores.
func TestForkBombStaysInside(t *testing.T) {
	const pidsLimit = 512
	h := newTestHost(t)
	before := hostTasks()
	ta := h.startAgent(t, "", func(c *Config) {
		d, err := gvisor.New(gvisor.Config{Runsc: c.Runsc, Root: filepath.Join(c.DataDir, "runsc"), CgroupParent: c.CgroupParent, PidsLimit: pidsLimit})
		if err != nil {
			t.Fatal(err)
		}
		c.Driver = d
	})
	bomb := ta.create(t, &agentpb.SandboxConfig{})
	calm := ta.create(t, &agentpb.SandboxConfig{})

	// Start the bomb without waiting for it: its stream may never end.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc := ta.process(bomb.Id, "", "")
	stream, err := pc.Start(ctx, connect.NewRequest(&processpb.StartRequest{
		Process: &processpb.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-c", "f(){ f | f & }; f"}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	stream.Receive() // the start event
	peak := 0
	for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		peak = max(peak, hostTasks()-before)
		out := mustSh(t, ta.process(calm.Id, "", ""), "echo calm")
		if out != "calm\n" {
			t.Fatalf("the other sandbox answered %q during the fork bomb", out)
		}
	}
	stream.Close()
	t.Logf("host tasks gained at peak: %d; bomb sandbox still exists: %v", peak, ta.exists(t, bomb.Id))
	// The bomb must really have forked, or the test proves nothing.
	if peak < 100 {
		t.Errorf("the fork bomb added only %d host tasks", peak)
	}
	// Both sandboxes count; each may hold at most pidsLimit host tasks,
	// plus what the agent's own goroutines and runsc invocations use.
	if bound := 2*pidsLimit + 200; peak > bound {
		t.Errorf("host gained %d tasks during the fork bomb, want at most %d", peak, bound)
	}
	ta.destroyRPC(t, bomb.Id)
	ta.destroyRPC(t, calm.Id)
	assertClean(t, h.dataDir)
}

// hostTasks counts the host's threads (what pids limits count).
func hostTasks() int {
	out, err := exec.Command("ps", "-eLo", "pid", "--no-headers").Output()
	if err != nil {
		return 0
	}
	return len(strings.Split(strings.TrimSpace(string(out)), "\n"))
}
