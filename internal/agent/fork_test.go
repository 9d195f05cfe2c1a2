package agent

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/processpb/processpbconnect"
)

// forkWorld is a pauseWorld (files, an in-memory pattern, a counter
// process) plus a web server on port 8080 serving /root/www.
func newForkWorld(t testing.TB, pc processpbconnect.ProcessClient) *pauseWorld {
	t.Helper()
	w := newPauseWorld(t, pc)
	mustSh(t, pc, "mkdir -p /root/www && echo source-page > /root/www/index.html && (setsid httpd -f -p 8080 -h /root/www </dev/null >/dev/null 2>&1 &)")
	return w
}

// pids lists the PIDs of the counter and the web server in a sandbox.
// A process the counter's shell forks (its mv) carries the shell's
// command line until it execs, so one listing may show it: the PIDs are
// those of three listings in a row, which no such moment spans.
func pids(t testing.TB, pc processpbconnect.ProcessClient) string {
	t.Helper()
	var common []string
	for i := range 3 {
		got := strings.Fields(mustSh(t, pc, `ps | grep -e 'httpd -f' -e 'while true' | grep -v grep | awk '{print $1}' | sort -n`))
		if i == 0 {
			common = got
			continue
		}
		common = slices.DeleteFunc(common, func(p string) bool { return !slices.Contains(got, p) })
	}
	return strings.Join(common, " ")
}

// page fetches / of port 8080 of sandbox id through the agent's proxy,
// retrying while the server comes up.
func (ta *testAgent) page(t testing.TB, id string) string {
	t.Helper()
	url := ta.base + "/proxy/" + id + "/8080/"
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := authClient.Get(url)
		if err != nil {
			last = err.Error()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return string(b)
		}
		last = fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	t.Fatalf("port 8080 of %s through the proxy: %s", id, last)
	return ""
}

// forkLeftovers lists what is left on the host of sandbox id (a fork
// that failed): its directory, namespaces, mounts, loop devices, runtime
// container and processes.
func forkLeftovers(dataDir, id string) []string {
	var out []string
	dir := filepath.Join(dataDir, "sandboxes", id)
	if _, err := os.Stat(dir); err == nil {
		out = append(out, "directory left: "+dir)
	}
	for _, ns := range []string{testPrefix + "-" + id, testPrefix + "n-" + id} {
		if _, err := os.Stat("/var/run/netns/" + ns); err == nil {
			out = append(out, "network namespace left: "+ns)
		}
	}
	if points, _ := mountsUnder(dir); len(points) > 0 {
		out = append(out, fmt.Sprintf("mounts left: %v", points))
	}
	loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, lf := range loops {
		if b, _ := os.ReadFile(lf); strings.Contains(string(b), dir) {
			out = append(out, "loop device left: "+lf)
		}
	}
	if procs := processesMentioning(id); len(procs) > 0 {
		out = append(out, fmt.Sprintf("processes left: %v", procs))
	}
	return out
}

// assertForkGone fails the test if anything of fork id is left.
func assertForkGone(t testing.TB, dataDir, id, when string) {
	t.Helper()
	var problems []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if problems = forkLeftovers(dataDir, id); len(problems) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, p := range problems {
		t.Errorf("%s: %s", when, p)
	}
}

// assertRestoredCopy checks sandbox id, restored from a checkpoint of a
// forkWorld's sandbox (a fork, or a sandbox started from a snapshot): the
// files, memory and counter of w (checked as of cycle), the processes of
// the source (pids before), its web server's page, its own token, and
// the source's refused. It returns a process client of id.
func (ta *testAgent) assertRestoredCopy(t testing.TB, id, token string, w *pauseWorld, before string, cycle int) processpbconnect.ProcessClient {
	t.Helper()
	pc := ta.process(id, token, "root")
	cw := *w
	cw.files = maps.Clone(w.files)
	cw.check(t, pc, cycle) // files, memory, the counter moved on
	if got := pids(t, pc); got != before {
		t.Errorf("sandbox %s: pids %q, the source had %q", id, got, before)
	}
	if got := ta.page(t, id); got != "source-page\n" {
		t.Errorf("sandbox %s's page: %q", id, got)
	}
	if _, _, err := sh(t.Context(), ta.process(id, "source-token", "root"), "true"); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("sandbox %s with the source's token: %v, want unauthenticated", id, err)
	}
	if code, _ := ta.envdGet(t, id, "source-token", "/envs"); code != http.StatusUnauthorized {
		t.Errorf("sandbox %s: /envs with the source's token: %d, want 401", id, code)
	}
	return pc
}

// assertOwnWrites writes a file and a web page of its own in each
// sandbox of ids and checks that each sees only its own: sandboxes
// restored from one checkpoint share nothing they write afterwards.
func (ta *testAgent) assertOwnWrites(t testing.TB, ids []string, clients map[string]processpbconnect.ProcessClient) {
	t.Helper()
	for _, id := range ids {
		mustSh(t, clients[id], fmt.Sprintf("echo %s > /root/www/index.html && echo %s > /root/mine && touch /root/only-%s", id, id, id))
	}
	for _, id := range ids {
		if got := strings.TrimSpace(mustSh(t, clients[id], "cat /root/mine; ls /root | grep only-")); got != id+"\nonly-"+id {
			t.Errorf("sandbox %s sees %q, want only its own file", id, got)
		}
		if got := ta.page(t, id); got != id+"\n" {
			t.Errorf("sandbox %s's page: %q, want its own", id, got)
		}
	}
}

// recoveredSource checks the source id of a call cut by a kill at step
// once a new agent ta runs: running, paused on disk (then resumed), or in
// error with its layer kept. Unless in error it has w's files, memory and
// processes. It returns "source <state>" for the test's log.
func recoveredSource(t *testing.T, ta *testAgent, dataDir, id, step string, w *pauseWorld) string {
	t.Helper()
	got := ta.getRPC(t, id)
	switch got.State {
	case agentpb.SandboxState_SANDBOX_STATE_PAUSED:
		if _, err := ta.resumeRPC(id); err != nil {
			t.Fatalf("after a kill at %s: the source is paused, but its resume failed: %v", step, err)
		}
	case agentpb.SandboxState_SANDBOX_STATE_RUNNING:
	case agentpb.SandboxState_SANDBOX_STATE_ERROR:
		rec, err := readState(filepath.Join(dataDir, "sandboxes", id))
		if err != nil || rec.Rootfs == nil {
			t.Fatalf("after a kill at %s: error (%s) without a state file naming its layer: %v", step, got.Error, err)
		}
		if _, err := os.Stat(rec.Rootfs.Image); err != nil {
			t.Fatalf("after a kill at %s: error (%s), and its writable layer is gone: %v", step, got.Error, err)
		}
	default:
		t.Fatalf("after a kill at %s: the source is %v", step, got)
	}
	if got.State != agentpb.SandboxState_SANDBOX_STATE_ERROR {
		w.check(t, ta.process(id, "", "root"), 1)
	}
	return "source " + got.State.String()
}

// TestFork forks a sandbox that runs a counter and a web server and holds
// files and an in-memory pattern into two: each fork has the same
// processes (same PIDs, the counter going on from the source's value),
// files and memory, answers on its port through the proxy for its own ID,
// takes its own token and refuses the source's; the source runs on with
// its token; files written afterwards in each are seen by none of the
// others. Everything is gone after the destroys.
func TestFork(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", nil)
	src := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 128, TimeoutSeconds: 600, AccessToken: "source-token"})
	pc := ta.process(src.Id, "source-token", "root")
	w := newForkWorld(t, pc)
	if got := ta.page(t, src.Id); got != "source-page\n" {
		t.Fatalf("the source's page: %q", got)
	}
	before := pids(t, pc)
	if len(strings.Fields(before)) != 2 {
		t.Fatalf("the counter and the web server: pids %q", before)
	}
	forks := []*agentpb.SandboxConfig{forkConfig("fork-token-1"), forkConfig("fork-token-2")}
	resp, err := ta.forkRPC(src.Id, forks...)
	if err != nil {
		t.Fatalf("fork: %v", err)
	}
	for i, r := range resp.Forks {
		if r.Sandbox == nil {
			t.Fatalf("fork %d: %s (%s)", i, r.Error, r.ErrorCode)
		}
	}
	if resp.Source.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
		t.Fatalf("source after the fork: %v", resp.Source)
	}
	ids := []string{src.Id, forks[0].Id, forks[1].Id}
	clients := map[string]processpbconnect.ProcessClient{src.Id: pc}
	for i, f := range forks {
		clients[f.Id] = ta.assertRestoredCopy(t, f.Id, f.AccessToken, w, before, 100+i)
		if got := resp.Forks[i].Sandbox.Address; got == src.Address {
			t.Errorf("fork %d has the source's address %s", i, got)
		}
	}
	w.check(t, pc, 200) // the source, with its own token, still counting
	if got := pids(t, pc); got != before {
		t.Errorf("the source's pids after the fork: %q, before %q", got, before)
	}

	ta.assertOwnWrites(t, ids, clients)
	for _, id := range ids {
		ta.destroyRPC(t, id)
	}
	assertClean(t, h.dataDir)
	if entries, _ := os.ReadDir(filepath.Join(h.dataDir, forksDirName)); len(entries) > 0 {
		t.Errorf("fork images left: %d", len(entries))
	}
}

// TestForkFailureInjection fails one of two forks after each fork step,
// then the call after each of the source's steps: the failed fork leaves
// nothing, the other runs, and the source runs on with its processes,
// files and memory.
func TestForkFailureInjection(t *testing.T) {
	h := newTestHost(t)
	var at atomic.Value
	at.Store("")
	var fired atomic.Bool
	ta := h.startAgent(t, "", func(c *Config) {
		c.failAt = func(step string) error {
			if step == at.Load().(string) && fired.CompareAndSwap(false, true) {
				return errInjected
			}
			return nil
		}
	})
	src := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 128, TimeoutSeconds: 600, AccessToken: "source-token"})
	pc := ta.process(src.Id, "source-token", "root")
	w := newPauseWorld(t, pc)
	for i, step := range forkSteps {
		at.Store(step)
		fired.Store(false)
		a, b := forkConfig("one"), forkConfig("two")
		resp, err := ta.forkRPC(src.Id, a, b)
		at.Store("")
		if err != nil {
			t.Fatalf("fork failing at %s: the call failed: %v", step, err)
		}
		var failed, ok *agentpb.ForkResult
		for _, r := range resp.Forks {
			if r.Sandbox == nil {
				failed = r
			} else {
				ok = r
			}
		}
		if failed == nil || ok == nil || !strings.Contains(failed.Error, errInjected.Error()) {
			t.Fatalf("fork failing at %s: %v, want one failed with the injected error and one running", step, resp.Forks)
		}
		assertForkGone(t, h.dataDir, failed.Id, "the fork that failed at "+step)
		if _, err := shOK(ta.process(ok.Id, ok.Sandbox.Config.Metadata["fork"], "root"), "cat /root/data/f1 >/dev/null"); err != nil {
			t.Errorf("the fork that did not fail at %s: %v", step, err)
		}
		w.check(t, pc, i)
		ta.destroyRPC(t, ok.Id)
	}
	for i, step := range forkSourceSteps {
		at.Store(step)
		fired.Store(false)
		a := forkConfig("one")
		_, err := ta.forkRPC(src.Id, a)
		at.Store("")
		if err == nil || !strings.Contains(err.Error(), errInjected.Error()) {
			t.Fatalf("fork failing at %s: %v, want the injected error", step, err)
		}
		assertForkGone(t, h.dataDir, a.Id, "the fork of a call failing at "+step)
		if got := ta.getRPC(t, src.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
			t.Fatalf("source after a call failing at %s: %v", step, got)
		}
		w.check(t, pc, 50+i)
	}
	ta.destroyRPC(t, src.Id)
	assertClean(t, h.dataDir)
}

// TestForkRefusals: a paused source, duplicate fork ids and a source of
// the unique-address layout are refused with nothing made.
func TestForkRefusals(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", func(c *Config) { c.UniqueGuestAddresses = true; diskTier(c) })
	old := ta.create(t, &agentpb.SandboxConfig{TimeoutSeconds: 600})
	if _, err := ta.forkRPC(old.Id, forkConfig("a")); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("fork of a sandbox with its own guest address: %v, want failed_precondition", err)
	}
	ta.destroyRPC(t, old.Id)
	ta.stop()

	tb := h.startAgent(t, "", diskTier)
	src := tb.create(t, &agentpb.SandboxConfig{TimeoutSeconds: 600})
	dup := forkConfig("a")
	if _, err := tb.forkRPC(src.Id, dup, &agentpb.SandboxConfig{Id: dup.Id}); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("fork with duplicate ids: %v, want invalid_argument", err)
	}
	assertForkGone(t, h.dataDir, dup.Id, "after a refused fork with duplicate ids")
	if _, err := tb.pauseRPC(src.Id, false); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.forkRPC(src.Id, forkConfig("b")); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("fork of a paused sandbox: %v, want failed_precondition", err)
	}
	if got := tb.getRPC(t, src.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_PAUSED {
		t.Errorf("the paused source after a refused fork: %v", got)
	}
	tb.destroyRPC(t, src.Id)
	assertClean(t, h.dataDir)
}

// killedSource starts a child agent on h that SIGKILLs its process group
// after step, and a sandbox on it holding a pauseWorld (disk-tier pauses:
// what a restarted agent finds is on disk).
func killedSource(t *testing.T, h *testHost, step string) (child, *testAgent, string, *pauseWorld) {
	t.Helper()
	c := startChild(t, h, childConfig{KillAt: step, PauseMemoryGrace: -1})
	ch := &testAgent{base: c.base, client: c.client}
	resp, err := c.client.CreateSandbox(t.Context(), connect.NewRequest(&agentpb.CreateSandboxRequest{
		Config: testSpec(&agentpb.SandboxConfig{MemoryMb: 96, Vcpus: 1, TimeoutSeconds: 600})}))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	id := resp.Msg.Sandbox.Id
	return c, ch, id, newPauseWorld(t, ch.process(id, "", "root"))
}

// TestAgentKilledDuringFork kills the agent with SIGKILL (its process
// group) after every step of a fork, the source's and the fork's. A new
// agent on the same data dir finds the source running, or paused on disk
// (a kill after its checkpoint, before its restore: resumed with its
// files, memory and processes); the fork gone with nothing left, or
// running if the kill came after it was recorded running; and no images
// of the call. A kill between the checkpoint and its manifest leaves the
// source in error with its writable layer kept, as a pause cut there
// does.
func TestAgentKilledDuringFork(t *testing.T) {
	h := newTestHost(t)
	outcomes := map[string][]string{}
	for _, step := range append(append([]string{}, forkSourceSteps...), forkSteps...) {
		t.Run(step, func(t *testing.T) {
			c, ch, id, w := killedSource(t, h, step)
			f := forkConfig("killed")
			if _, err := ch.forkRPC(id, f); err == nil {
				t.Fatalf("the fork answered although its agent was killed at %s", step)
			}
			c.kill()

			ta := h.startAgent(t, "", nil)
			outcome := recoveredSource(t, ta, h.dataDir, id, step, w)
			if _, err := ta.client.GetSandbox(t.Context(), connect.NewRequest(&agentpb.GetSandboxRequest{Id: f.Id})); err == nil {
				outcome += ", fork running"
				if step != stepForkRunning {
					t.Errorf("after a kill at %s the fork was adopted", step)
				}
				if _, err := shOK(ta.process(f.Id, f.AccessToken, "root"), "cat /root/data/f1 > /dev/null"); err != nil {
					t.Errorf("the adopted fork: %v", err)
				}
				ta.destroyRPC(t, f.Id)
			} else {
				outcome += ", fork gone"
				if connect.CodeOf(err) != connect.CodeNotFound {
					t.Errorf("after a kill at %s: get of the fork: %v", step, err)
				}
			}
			assertForkGone(t, h.dataDir, f.Id, "after a kill at "+step)
			if entries, _ := os.ReadDir(filepath.Join(h.dataDir, forksDirName)); len(entries) > 0 {
				t.Errorf("after a kill at %s: images of the fork left: %d", step, len(entries))
			}
			outcomes[outcome] = append(outcomes[outcome], step)
			ta.destroyRPC(t, id)
			ta.stop()
		})
	}
	for o, at := range outcomes {
		t.Logf("%s after a kill at: %s", o, strings.Join(at, ", "))
	}
	assertClean(t, h.dataDir)
}
