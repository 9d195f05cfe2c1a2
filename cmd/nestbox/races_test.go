package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/controlplane"
	"nestbox.dev/internal/proto/agentpb"
)

// TestParallelCreateDestroy starts 50 capsules and destroys each at a
// random moment, many while they are still starting. Every capsule must
// end in a final status and the host must end with no sandbox.
func TestParallelCreateDestroy(t *testing.T) {
	// 50 live capsules at once: more than a team's default quota.
	p := startUp(t, "--team-max-capsules", "-1", "--team-max-vcpus", "-1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	ids := make(chan string, 50)
	for i := range 50 {
		wg.Go(func() {
			h, err := p.client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal", MemoryMB: 128}, nestbox.NoWait())
			if err != nil {
				t.Errorf("create %d: %v", i, err)
				return
			}
			ids <- h.ID()
			time.Sleep(time.Duration(rand.IntN(1500)) * time.Millisecond)
			if _, err := h.Kill(ctx, nestbox.NoWait()); err != nil {
				t.Errorf("destroy %s: %v", h.ID(), err)
			}
		})
	}
	wg.Wait()
	close(ids)
	counts := map[nestbox.Status]int{}
	for id := range ids {
		c, err := p.client.Capsule(id).Wait(ctx, nestbox.StatusStopped)
		if err != nil && c.Status != nestbox.StatusError {
			t.Fatalf("capsule %s: %+v, %v", id, c, err)
		}
		counts[c.Status]++
	}
	t.Logf("final statuses: %v", counts)
	if counts[nestbox.StatusStopped]+counts[nestbox.StatusError] != 50 {
		t.Fatalf("final statuses %v: want 50 stopped or failed", counts)
	}
	if left := leftovers(p.dataDir); len(left) > 0 {
		t.Fatalf("with every capsule gone, the host still has:\n%s", strings.Join(left, "\n"))
	}
}

// TestAgentKilledMidCreate runs the control plane and the host agent as
// separate roles, kills the agent with SIGKILL while capsules are being
// created, and restarts it: every capsule must end running or failed (none
// stuck starting), the agent must run exactly the running ones, and
// nothing may leak.
func TestAgentKilledMidCreate(t *testing.T) {
	b := requirePlatform(t)
	bin := buildNestbox(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	cpDir := t.TempDir()
	token, err := controlplane.HostToken(cpDir)
	if err != nil {
		t.Fatal(err)
	}
	cpAddr := freeAddr(t)
	agent := startAgentProcess(t, b, bin, cpAddr, token, "nbf", "10.216.0.0/24", "/nestbox-e2e-agent")
	agentAddr, agentClient := agent.addr, agent.client

	var cpOut syncBuffer
	cpCtx, cpCancel := context.WithCancel(ctx)
	cpDone := make(chan error, 1)
	go func() {
		cpDone <- runServer(cpCtx, []string{"--data-dir", cpDir, "--listen", cpAddr, "--agent-url", "http://" + agentAddr, "--agent-token-file", agent.tokenFile, "--reconcile-interval", "1s", "--log-level", "warn"}, &cpOut, &cpOut)
	}()
	defer func() { cpCancel(); <-cpDone }()
	waitHTTP(t, "http://"+cpAddr+"/health")
	url, key, err := nestbox.LoadCredentials(cpDir)
	if err != nil {
		t.Fatal(err)
	}
	client, err := nestbox.New(nestbox.Config{URL: url, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}

	// One capsule that runs through it all, and four caught mid-create.
	survivor, err := client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	var caught []*nestbox.Handle
	for range 4 {
		h, err := client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal"}, nestbox.NoWait())
		if err != nil {
			t.Fatal(err)
		}
		caught = append(caught, h)
	}
	time.Sleep(80 * time.Millisecond)
	agent.kill()
	agent.start()

	// The reconciler (every second here) settles everything.
	deadline := time.Now().Add(time.Minute)
	for {
		var pending []string
		running := map[string]bool{}
		reasons := map[string]string{}
		for _, h := range append(caught, survivor) {
			c, err := h.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			switch c.Status {
			case nestbox.StatusRunning:
				running[c.ID] = true
			case nestbox.StatusError:
				reasons[c.ID] = c.Error
			default:
				pending = append(pending, c.ID+" "+string(c.Status))
			}
		}
		resp, err := agentClient.ListSandboxes(ctx, connect.NewRequest(&agentpb.ListSandboxesRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		var extra []string
		for _, sb := range resp.Msg.GetSandboxes() {
			if !running[sb.GetId()] {
				extra = append(extra, sb.GetId())
			}
		}
		if len(pending) == 0 && len(extra) == 0 && len(resp.Msg.GetSandboxes()) == len(running) {
			if !running[survivor.ID()] {
				t.Fatal("the capsule created before the kill did not survive the agent's restart")
			}
			t.Logf("%d of %d capsules caught mid-create ended running; the others failed: %v", len(running)-1, len(caught), reasons)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled after a minute: pending %v, sandboxes without a running capsule %v", pending, extra)
		}
		time.Sleep(500 * time.Millisecond)
	}
	res, err := survivor.Exec(ctx, []string{"echo", "still here"})
	if err != nil || res.Stdout != "still here\n" {
		t.Fatalf("exec after the agent's restart: %+v, %v", res, err)
	}
	for _, h := range append(caught, survivor) {
		if _, err := h.Kill(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildNestbox builds the nestbox binary once per test run.
func buildNestbox(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nestbox-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "nestbox")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// freeAddr returns a localhost address with a port nobody listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitHTTP waits until url answers 200.
func waitHTTP(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not answer", url)
}
