package main

import (
	"context"
	"net/http"
	"os/exec"
	"sort"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/controlplane"
	"nestbox.dev/internal/proto/agentpb"
)

// serverProcess is a `nestbox server` run as a child process, so that a
// test can SIGKILL it as a crash would.
type serverProcess struct {
	t      testing.TB
	bin    string
	args   []string
	addr   string
	out    syncBuffer
	cmd    *exec.Cmd
	exited chan error
}

// start runs the server and waits for its /health; a server that exits
// first fails the test at once, with its output.
func (s *serverProcess) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.exited = make(chan error, 1)
	go func() { s.exited <- s.cmd.Wait() }()
	url := "http://" + s.addr + "/health"
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-s.exited:
			s.exited <- err
			s.t.Fatalf("nestbox server exited before answering: %v\n%s", err, s.out.String())
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	s.t.Fatalf("%s did not answer", url)
}

func (s *serverProcess) kill() {
	if s.exited == nil {
		return
	}
	s.cmd.Process.Kill()
	err := <-s.exited
	s.exited <- err // kill may be called again
}

// startSplitPlatform runs `nestbox agent` and `nestbox server` as
// separate child processes (the periodic reconcile an hour away) and
// returns them with an SDK client of the server. prefix, cidr and cgroup
// keep the agent's host objects apart from other tests'.
func startSplitPlatform(t *testing.T, prefix, cidr, cgroup string) (*agentProcess, *serverProcess, *nestbox.Client) {
	t.Helper()
	b := requirePlatform(t)
	bin := buildNestbox(t)
	cpDir := t.TempDir()
	token, err := controlplane.HostToken(cpDir)
	if err != nil {
		t.Fatal(err)
	}
	cpAddr := freeAddr(t)
	agent := startAgentProcess(t, b, bin, cpAddr, token, prefix, cidr, cgroup)
	srv := &serverProcess{t: t, bin: bin, addr: cpAddr, args: []string{"server",
		"--data-dir", cpDir, "--listen", cpAddr, "--agent-url", "http://" + agent.addr,
		"--agent-token-file", agent.tokenFile, "--reconcile-interval", "1h", "--log-level", "info"}}
	srv.start()
	t.Cleanup(func() {
		srv.kill()
		if t.Failed() {
			t.Logf("server output:\n%s", srv.out.String())
		}
	})
	url, key, err := nestbox.LoadCredentials(cpDir)
	if err != nil {
		t.Fatal(err)
	}
	client, err := nestbox.New(nestbox.Config{URL: url, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return agent, srv, client
}

// TestServerKilledMidCreate runs `nestbox server` and `nestbox agent` as
// separate processes, SIGKILLs the server while 10 capsules are being
// created, and starts it again. Its first reconcile resolves every capsule
// the dead process left starting, at once rather than after the 10-minute
// stuck threshold (the periodic reconcile is an hour away here): within
// seconds every capsule is running (and exec works) or error (and gone
// from the host), and the host runs nothing else.
func TestServerKilledMidCreate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	agent, srv, client := startSplitPlatform(t, "nbk", "10.217.0.0/24", "/nestbox-e2e-cpkill")
	// Build the template first, so that the creates below are quick and
	// the kill lands among them.
	warm, err := client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal", MemoryMB: 128})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	ids := []string{warm.ID()}
	for range 10 {
		h, err := client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal", MemoryMB: 128}, nestbox.NoWait())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, h.ID())
	}
	// Kill the server as soon as the first of them has left starting: the
	// others are caught at various stages of their create.
	for first := time.Now(); time.Since(first) < 30*time.Second; time.Sleep(20 * time.Millisecond) {
		c, err := client.Capsule(ids[1]).Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status != nestbox.StatusStarting {
			break
		}
	}
	srv.kill()
	killed := time.Now()
	srv.start()

	var running []string
	deadline := time.Now().Add(time.Minute)
	for {
		var pending, failed []string
		running = nil
		isRunning := map[string]bool{}
		for _, id := range ids {
			c, err := client.Capsule(id).Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			switch c.Status {
			case nestbox.StatusRunning:
				running = append(running, id)
				isRunning[id] = true
			case nestbox.StatusError:
				failed = append(failed, id+": "+c.Error)
			default:
				pending = append(pending, id+" "+string(c.Status))
			}
		}
		resp, err := agent.client.ListSandboxes(ctx, connect.NewRequest(&agentpb.ListSandboxesRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		var extra []string
		for _, sb := range resp.Msg.GetSandboxes() {
			if !isRunning[sb.GetId()] {
				extra = append(extra, sb.GetId()+" "+sb.GetState().String())
			}
		}
		if len(pending) == 0 && len(extra) == 0 {
			sort.Strings(failed)
			t.Logf("settled %v after the kill: %d running, %d failed %v", time.Since(killed).Round(10*time.Millisecond), len(running), len(failed), failed)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after the restart: pending %v; sandboxes on the host without a running capsule %v", pending, extra)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, id := range running {
		res, err := client.Capsule(id).Exec(ctx, []string{"echo", "ok"})
		if err != nil || res.Stdout != "ok\n" {
			t.Errorf("exec in %s after the restart: %+v, %v", id, res, err)
		}
	}
	for _, id := range ids {
		if _, err := client.Capsule(id).Kill(ctx); err != nil {
			t.Errorf("destroy %s: %v", id, err)
		}
	}
}
