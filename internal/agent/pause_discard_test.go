package agent

import (
	"context"
	"os"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/agentpb"
)

// TestResumeDiscardingMemory resumes a sandbox paused with its memory,
// from each tier, without that memory (E2B's connect with memory false):
// its files are there, its processes and in-memory files are not, the
// access token of the request is the one envd requires, and the snapshot
// is gone.
func TestResumeDiscardingMemory(t *testing.T) {
	for _, tier := range []struct {
		name string
		cfg  func(*Config)
	}{
		{tierDisk, diskTier},
		{tierMemory, func(c *Config) { c.PauseMemoryGrace = time.Hour }},
	} {
		t.Run(tier.name, func(t *testing.T) {
			h := newTestHost(t)
			ta := h.startAgent(t, "", tier.cfg)
			sb := ta.create(t, &agentpb.SandboxConfig{AccessToken: "first-token", TimeoutSeconds: 600})
			pc := ta.process(sb.Id, "first-token", "root")
			mustSh(t, pc, "echo kept > /root/disk.txt; echo lost > /dev/shm/mem.txt; setsid sleep 600 </dev/null >/dev/null 2>&1 &")
			p, err := ta.pauseRPC(sb.Id, false)
			if err != nil {
				t.Fatalf("pause: %v", err)
			}
			if p.PauseTier != tier.name {
				t.Fatalf("paused in tier %q, want %q", p.PauseTier, tier.name)
			}
			resp, err := ta.client.ResumeSandbox(context.Background(), connect.NewRequest(&agentpb.ResumeSandboxRequest{
				Id: sb.Id, TimeoutSeconds: 600, DiscardMemory: true, AccessToken: "second-token"}))
			if err != nil {
				t.Fatalf("resume without memory: %v", err)
			}
			if got := resp.Msg.Sandbox; got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
				t.Fatalf("after the resume: %v", got)
			}
			out := mustSh(t, ta.process(sb.Id, "second-token", "root"),
				"cat /root/disk.txt; cat /dev/shm/mem.txt 2>/dev/null || echo no-mem; ps -o args | grep -c '[s]leep 600' || true")
			if want := "kept\nno-mem\n0\n"; out != want {
				t.Errorf("after a resume without memory: %q, want %q (the disk kept, memory and processes not)", out, want)
			}
			if _, err := os.Stat(snapshotDir(ta.lookup(sb.Id))); !os.IsNotExist(err) {
				t.Errorf("the dropped snapshot is still there: %v", err)
			}
			if _, code, err := sh(context.Background(), ta.process(sb.Id, "first-token", "root"), "true"); err == nil && code == 0 {
				t.Error("the old access token still works after a fresh boot with a new one")
			}
			ta.destroyRPC(t, sb.Id)
			assertClean(t, h.dataDir)
		})
	}
}
