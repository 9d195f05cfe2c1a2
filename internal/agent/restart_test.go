package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/agentpb/agentpbconnect"
	"nestbox.dev/internal/testenv"
)

// startChildAgent runs an agent on h's data dir in a child process (this
// test binary, see TestMain) in its own process group and returns its
// client and a function that kills the whole group with SIGKILL.
func startChildAgent(t *testing.T, h *testHost) (agentpbconnect.AgentClient, string, func()) {
	t.Helper()
	c := startChild(t, h, childConfig{})
	return c.client, c.base, c.kill
}

// child is an agent run in a child process by startChild.
type child struct {
	client agentpbconnect.AgentClient
	base   string
	// kill kills the child's process group with SIGKILL and waits for
	// the child's exit; exited is closed at that exit, whoever caused it.
	kill   func()
	exited <-chan struct{}
}

// startChild starts a child agent on h with the fields of extra that are
// not h's: KillAt and PauseMemoryGrace.
func startChild(t *testing.T, h *testHost, extra childConfig) child {
	t.Helper()
	c := h.config()
	raw, _ := json.Marshal(childConfig{
		DataDir: c.DataDir, Runsc: c.Runsc, Envd: c.Envd, TemplateDir: c.TemplateDir, CgroupParent: c.CgroupParent,
		NetworkCIDR: c.NetworkCIDR, NetworkPrefix: c.NetworkPrefix, DefaultRootfsSize: c.DefaultRootfsSize,
		DefaultMemoryMB: c.DefaultMemoryMB, KillAt: extra.KillAt, PauseMemoryGrace: extra.PauseMemoryGrace,
	})
	self, _ := os.Executable()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "NBA_AGENT_CHILD="+string(raw))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
				addr <- a
			}
		}
		cmd.Wait() // after the last read of stdout, as Wait requires
		close(exited)
	}()
	kill := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	t.Cleanup(kill)
	select {
	case a := <-addr:
		base := "http://" + a
		return child{client: agentpbconnect.NewAgentClient(authClient, base), base: base, kill: kill, exited: exited}
	case <-time.After(time.Minute):
		t.Fatal("child agent did not start")
	}
	return child{}
}

// TestRestart kills an agent with SIGKILL and starts another on the same
// data dir: the running sandbox is adopted and still answers through the
// proxy; a sandbox whose container went while no agent ran, a network
// namespace and a mount nobody owns are cleaned up.
func TestRestart(t *testing.T) {
	h := newTestHost(t)
	client, base, kill := startChildAgent(t, h)
	ctx := context.Background()
	create := func(cfg *agentpb.SandboxConfig) *agentpb.Sandbox {
		resp, err := client.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: testSpec(cfg)}))
		if err != nil {
			t.Fatalf("create through the child agent: %v", err)
		}
		return resp.Msg.Sandbox
	}
	keep := create(&agentpb.SandboxConfig{AccessToken: "keep-token", TimeoutSeconds: 600})
	lost := create(&agentpb.SandboxConfig{})
	old := &testAgent{base: base}
	mustSh(t, old.process(keep.Id, "keep-token", ""), "echo before > /home/user/state.txt; sleep 600 >/dev/null 2>&1 &")

	kill()

	// While no agent runs: the container of one sandbox goes, and a
	// network namespace and a mounted directory appear that no state file
	// names (a create that died half-way).
	if out, err := exec.Command(h.p.runsc, "--root="+filepath.Join(h.dataDir, "runsc"), "delete", "-force", lost.Id).CombinedOutput(); err != nil {
		t.Fatalf("runsc delete: %v: %s", err, out)
	}
	strayNS := testPrefix + "-" + capsulespec.NewID()
	if out, err := exec.Command("ip", "netns", "add", strayNS).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	strayDir := filepath.Join(h.dataDir, "sandboxes", capsulespec.NewID())
	os.MkdirAll(filepath.Join(strayDir, "rootfs"), 0o700)
	if err := unix.Mount("tmpfs", filepath.Join(strayDir, "rootfs"), "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}

	sink := newEventSink(t, 0)
	ta := h.startAgent(t, "", func(c *Config) { c.EventsURL = sink.url() })

	list := ta.list()
	if len(list) != 1 || list[0].Id != keep.Id {
		t.Fatalf("after restart: %v, want only %s", list, keep.Id)
	}
	if list[0].EndAt.AsTime().Sub(keep.EndAt.AsTime()).Abs() > time.Millisecond {
		t.Errorf("adopted end %s, want %s", list[0].EndAt.AsTime(), keep.EndAt.AsTime())
	}
	pc := ta.process(keep.Id, "keep-token", "")
	if out := mustSh(t, pc, "cat /home/user/state.txt; ps | grep -q '[s]leep 600' && echo sleeper"); out != "before\nsleeper\n" {
		t.Errorf("adopted sandbox: %q, want its file and its process", out)
	}
	sink.waitFor(t, lost.Id, EventCrashed)
	for _, p := range []string{filepath.Join(h.dataDir, "sandboxes", lost.Id), "/var/run/netns/" + testPrefix + "-" + lost.Id, "/var/run/netns/" + strayNS, strayDir} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s survived the restart", p)
		}
	}
	if _, err := ta.client.SetTimeout(ctx, connect.NewRequest(&agentpb.SetTimeoutRequest{Id: keep.Id, TimeoutSeconds: 60})); err != nil {
		t.Errorf("SetTimeout of the adopted sandbox: %v", err)
	}
	if _, err := ta.client.GetSandboxMetrics(ctx, connect.NewRequest(&agentpb.GetSandboxMetricsRequest{Id: keep.Id})); err != nil {
		t.Errorf("metrics of the adopted sandbox: %v", err)
	}

	// An in-process agent dropped without cleanup: the next one adopts
	// again.
	ta.kill()
	ta2 := h.startAgent(t, "", nil)
	mustSh(t, ta2.process(keep.Id, "keep-token", ""), "test -f /home/user/state.txt")
	ta2.destroyRPC(t, keep.Id)
	assertClean(t, h.dataDir)
}

// TestFailedDestroyKeepsSlot makes a destroy fail after the sandbox's
// network was torn down (its directory cannot be removed), lets a new
// sandbox take the freed network slot, and checks that neither a retried
// destroy nor a restarted agent touches the new sandbox's network.
func TestFailedDestroyKeepsSlot(t *testing.T) {
	testenv.RequireCommand(t, "chattr")
	h := newTestHost(t)
	ta := h.startAgent(t, "", nil)
	ctx := context.Background()
	x := ta.create(t, &agentpb.SandboxConfig{})
	pin := filepath.Join(h.dataDir, "sandboxes", x.Id, "pinned")
	os.WriteFile(pin, nil, 0o600)
	if out, err := exec.Command("chattr", "+i", pin).CombinedOutput(); err != nil {
		testenv.Missing(t, fmt.Sprintf("chattr +i: %v: %s", err, out))
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", pin).Run() })

	if err := ta.destroy(ctx, x.Id); err == nil {
		t.Fatal("destroy of a sandbox whose directory cannot be removed succeeded")
	}
	y := ta.create(t, &agentpb.SandboxConfig{})
	if y.Address != x.Address {
		t.Fatalf("the new sandbox got %s, not the freed %s: the test proves nothing", y.Address, x.Address)
	}
	if err := ta.destroy(ctx, x.Id); err == nil {
		t.Fatal("retried destroy succeeded with the directory still pinned")
	}
	mustSh(t, ta.process(y.Id, "", ""), "true")

	ta.kill()
	ta2 := h.startAgent(t, "", nil)
	mustSh(t, ta2.process(y.Id, "", ""), "true")
	if got := ta2.list(); len(got) != 1 || got[0].Id != y.Id {
		t.Errorf("after restart: %v, want only %s", got, y.Id)
	}
	exec.Command("chattr", "-i", pin).Run()
	ta2.destroyRPC(t, x.Id)
	mustSh(t, ta2.process(y.Id, "", ""), "true")
	ta2.destroyRPC(t, y.Id)
	assertClean(t, h.dataDir)
}
