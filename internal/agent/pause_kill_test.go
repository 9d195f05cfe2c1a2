package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/agentpb"
)

// TestAgentKilledDuringPauseOrResume kills the agent with SIGKILL (its
// whole process group, the runsc clients it started included) after every
// step of a pause and of a resume, of both tiers, of a demotion from
// memory to disk, and in the middle of the checkpoint and of the restore.
// A new agent on the same data dir must find the sandbox paused (and
// resume it with its files, memory and processes), running (intact), or
// in error with its writable layer kept: never gone.
func TestAgentKilledDuringPauseOrResume(t *testing.T) {
	h := newTestHost(t)
	type killCase struct {
		tier   string // "disk", "memory" or "demote"
		killAt string
	}
	var cases []killCase
	add := func(tier string, steps ...string) {
		for _, s := range steps {
			cases = append(cases, killCase{tier, s})
		}
	}
	add("disk", pauseSteps...)
	add("disk", stepPauseSync+"+100ms", stepPauseSync+"+500ms")
	add("disk", resumeSteps...)
	add("disk", stepResumeLayer+"+100ms")
	add("memory", memoryPauseSteps...)
	add("memory", memoryResumeSteps...)
	add("demote", demoteSteps...)
	add("demote", stepDemoteThaw+"+50ms")
	grace := map[string]time.Duration{"disk": -1, "memory": time.Hour, "demote": 300 * time.Millisecond}
	outcomes := map[string][]string{}
	for _, tc := range cases {
		name := tc.tier + "/" + tc.killAt
		t.Run(name, func(t *testing.T) {
			c := startChild(t, h, childConfig{KillAt: tc.killAt, PauseMemoryGrace: grace[tc.tier]})
			ch := &testAgent{base: c.base, client: c.client}
			resp, err := c.client.CreateSandbox(context.Background(), connect.NewRequest(&agentpb.CreateSandboxRequest{
				Config: testSpec(&agentpb.SandboxConfig{MemoryMb: 96, Vcpus: 1, TimeoutSeconds: 600})}))
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			id := resp.Msg.Sandbox.Id
			w := newPauseWorld(t, ch.process(id, "", "root"))
			switch {
			case tc.tier == "demote":
				// The pause answers from memory; the demotion after the
				// grace period is where the agent dies.
				if _, err := ch.pauseRPC(id, false); err != nil {
					t.Fatalf("pause: %v", err)
				}
				select {
				case <-c.exited:
				case <-time.After(2 * time.Minute):
					t.Fatalf("the agent was not killed at %s of a demotion", tc.killAt)
				}
			case strings.HasPrefix(tc.killAt, "resume-"):
				if _, err := ch.pauseRPC(id, false); err != nil {
					t.Fatalf("pause before the resume: %v", err)
				}
				_, err = ch.resumeRPC(id)
			default:
				_, err = ch.pauseRPC(id, false)
			}
			// A delayed kill may come after a fast operation ended.
			if tc.tier != "demote" && err == nil && !strings.Contains(tc.killAt, "+") {
				t.Fatalf("the operation answered although its agent was killed at %s", tc.killAt)
			}
			c.kill()

			ta := h.startAgent(t, "", nil)
			gr, err := ta.client.GetSandbox(context.Background(), connect.NewRequest(&agentpb.GetSandboxRequest{Id: id}))
			if err != nil {
				t.Fatalf("after a kill at %s the sandbox is gone: %v", name, err)
			}
			got := gr.Msg.Sandbox
			outcome := got.State.String()
			switch got.State {
			case agentpb.SandboxState_SANDBOX_STATE_PAUSED:
				outcome += " (" + got.PauseTier + ")"
				if _, err := ta.resumeRPC(id); err != nil {
					tail, _ := os.ReadFile(filepath.Join(h.dataDir, "sandboxes", id, "upper", "logs", "runsc.log"))
					if len(tail) > 4000 {
						tail = tail[len(tail)-4000:]
					}
					t.Fatalf("after a kill at %s: paused, but the resume failed: %v\nend of runsc.log:\n%s", name, err, tail)
				}
				w.check(t, ta.process(id, "", "root"), 1)
			case agentpb.SandboxState_SANDBOX_STATE_RUNNING:
				w.check(t, ta.process(id, "", "root"), 1)
			case agentpb.SandboxState_SANDBOX_STATE_ERROR:
				rec, err := readState(filepath.Join(h.dataDir, "sandboxes", id))
				if err != nil || rec.Rootfs == nil {
					t.Fatalf("after a kill at %s: error (%s) without a state file naming its layer: %v", name, got.Error, err)
				}
				if _, err := os.Stat(rec.Rootfs.Image); err != nil {
					t.Fatalf("after a kill at %s: error (%s), and its writable layer is gone: %v", name, got.Error, err)
				}
			default:
				t.Fatalf("after a kill at %s: state %v", name, got.State)
			}
			outcomes[outcome] = append(outcomes[outcome], name)
			ta.destroyRPC(t, id)
			ta.stop()
		})
	}
	for st, at := range outcomes {
		t.Logf("%s after a kill at: %s", st, strings.Join(at, ", "))
	}
	assertClean(t, h.dataDir)
}
