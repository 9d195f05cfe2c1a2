package agent

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/agentpb"
)

// TestAgentKilledDuringPauseOrResume kills the agent with SIGKILL (its
// whole process group, the runsc clients it started included) after every
// step of a pause and of a resume, and in the middle of the checkpoint and
// of the restore. A new agent on the same data dir must find the sandbox
// paused (and resume it with its files, memory and processes), running
// (intact), or in error with its writable layer kept: never gone.
func TestAgentKilledDuringPauseOrResume(t *testing.T) {
	h := newTestHost(t)
	var cases []string
	cases = append(cases, pauseSteps...)
	cases = append(cases, stepPauseSync+"+100ms", stepPauseSync+"+500ms")
	cases = append(cases, resumeSteps...)
	cases = append(cases, stepResumeLayer+"+100ms")
	outcomes := map[string][]string{}
	for _, killAt := range cases {
		t.Run(killAt, func(t *testing.T) {
			client, base, kill := startChildAgentKillAt(t, h, killAt)
			child := &testAgent{base: base, client: client}
			resp, err := client.CreateSandbox(context.Background(), connect.NewRequest(&agentpb.CreateSandboxRequest{
				Config: testSpec(&agentpb.SandboxConfig{MemoryMb: 96, Vcpus: 1, TimeoutSeconds: 600})}))
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			id := resp.Msg.Sandbox.Id
			w := newPauseWorld(t, child.process(id, "", "root"))
			if strings.HasPrefix(killAt, "resume-") {
				if _, err := child.pauseRPC(id, false); err != nil {
					t.Fatalf("pause before the resume: %v", err)
				}
				_, err = child.resumeRPC(id)
			} else {
				_, err = child.pauseRPC(id, false)
			}
			// A delayed kill may come after a fast operation ended.
			if err == nil && !strings.Contains(killAt, "+") {
				t.Fatalf("the operation answered although its agent was killed at %s", killAt)
			}
			kill()

			ta := h.startAgent(t, "", nil)
			gr, err := ta.client.GetSandbox(context.Background(), connect.NewRequest(&agentpb.GetSandboxRequest{Id: id}))
			if err != nil {
				t.Fatalf("after a kill at %s the sandbox is gone: %v", killAt, err)
			}
			got := gr.Msg.Sandbox
			switch got.State {
			case agentpb.SandboxState_SANDBOX_STATE_PAUSED:
				if _, err := ta.resumeRPC(id); err != nil {
					t.Fatalf("after a kill at %s: paused, but the resume failed: %v", killAt, err)
				}
				w.check(t, ta.process(id, "", "root"), 1)
			case agentpb.SandboxState_SANDBOX_STATE_RUNNING:
				w.check(t, ta.process(id, "", "root"), 1)
			case agentpb.SandboxState_SANDBOX_STATE_ERROR:
				rec, err := readState(fmt.Sprintf("%s/sandboxes/%s", h.dataDir, id))
				if err != nil || rec.Rootfs == nil {
					t.Fatalf("after a kill at %s: error (%s) without a state file naming its layer: %v", killAt, got.Error, err)
				}
				if _, err := os.Stat(rec.Rootfs.Image); err != nil {
					t.Fatalf("after a kill at %s: error (%s), and its writable layer is gone: %v", killAt, got.Error, err)
				}
			default:
				t.Fatalf("after a kill at %s: state %v", killAt, got.State)
			}
			outcomes[got.State.String()] = append(outcomes[got.State.String()], killAt)
			ta.destroyRPC(t, id)
			ta.stop()
		})
	}
	for st, at := range outcomes {
		t.Logf("%s after a kill at: %s", st, strings.Join(at, ", "))
	}
	assertClean(t, h.dataDir)
}
