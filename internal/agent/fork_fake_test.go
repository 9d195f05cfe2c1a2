package agent

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/proto/agentpb"
)

// forkRPC forks sandbox id into forks through the API.
func (ta *testAgent) forkRPC(id string, forks ...*agentpb.SandboxConfig) (*agentpb.ForkSandboxResponse, error) {
	resp, err := ta.client.ForkSandbox(context.Background(), connect.NewRequest(&agentpb.ForkSandboxRequest{Id: id, Forks: forks}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// forkConfig is a fork's request: a new ID, token and metadata.
func forkConfig(token string) *agentpb.SandboxConfig {
	return &agentpb.SandboxConfig{Id: capsulespec.NewID(), AccessToken: token, TimeoutSeconds: 120, Metadata: map[string]string{"fork": token}}
}

// onlySource checks that w holds nothing but sandbox src's things: every
// fork that failed or was destroyed left nothing.
func (w *fakeWorld) onlySource(t testing.TB, src, when string) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(w.dataDir, "sandboxes"))
	for _, e := range entries {
		if e.Name() != src {
			t.Errorf("%s: sandbox directory %s left", when, e.Name())
		}
	}
	if ids, _ := w.driver.List(context.Background()); !slices.Equal(ids, []string{src}) {
		t.Errorf("%s: runtime sandboxes %v, want only the source %s", when, ids, src)
	}
	w.net.mu.Lock()
	for id := range w.net.built {
		if id != src {
			t.Errorf("%s: network of %s left", when, id)
		}
	}
	for slot, id := range w.net.used {
		if id != src {
			t.Errorf("%s: network slot %d of %s left", when, slot, id)
		}
	}
	w.net.mu.Unlock()
	w.layers.mu.Lock()
	for root := range w.layers.held {
		if filepath.Base(filepath.Dir(root)) != src {
			t.Errorf("%s: layer %s left", when, root)
		}
	}
	w.layers.mu.Unlock()
	if entries, _ := os.ReadDir(filepath.Join(w.dataDir, forksDirName)); len(entries) > 0 {
		t.Errorf("%s: fork images left: %d entries", when, len(entries))
	}
}

// TestFakeFork forks a sandbox twice: each fork runs with the source's
// env vars, its own token (the source's is refused by it), metadata and
// timeout; the source runs on with its own token; destroying everything
// leaves nothing, the call's images included.
func TestFakeFork(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, nil)
	envs := map[string]string{"GREETING": "hi"}
	src := ta.create(t, &agentpb.SandboxConfig{AccessToken: "source-token", EnvVars: envs, TimeoutSeconds: 600, Metadata: map[string]string{"who": "source"}})
	f1, f2 := forkConfig("fork-token-1"), forkConfig("fork-token-2")
	f2.TimeoutSeconds = 0
	resp, err := ta.forkRPC(src.Id, f1, f2)
	if err != nil {
		t.Fatalf("fork: %v", err)
	}
	if resp.Source.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING || resp.Source.Id != src.Id {
		t.Fatalf("fork answered source %v, want it running", resp.Source)
	}
	if len(resp.Forks) != 2 {
		t.Fatalf("fork answered %d results, want 2", len(resp.Forks))
	}
	for i, f := range []*agentpb.SandboxConfig{f1, f2} {
		r := resp.Forks[i]
		if r.Id != f.Id || r.Sandbox == nil || r.Error != "" {
			t.Fatalf("fork %d: %v, want %s running", i, r, f.Id)
		}
		cfg := r.Sandbox.Config
		wantTimeout := f.TimeoutSeconds
		if wantTimeout == 0 {
			wantTimeout = uint32(DefaultTimeout.Seconds())
		}
		if cfg.Metadata["fork"] != f.AccessToken || cfg.Metadata["who"] != "" || cfg.TimeoutSeconds != wantTimeout ||
			cfg.AccessToken != "" || len(cfg.EnvVars) != 0 || cfg.Template != src.Config.Template || cfg.MemoryMb != src.Config.MemoryMb {
			t.Errorf("fork %d config %v", i, cfg)
		}
		if r.Sandbox.Address == src.Address {
			t.Errorf("fork %d has the source's address %s", i, src.Address)
		}
		ta.wantEnvs(t, f.Id, f.AccessToken, envs, "in fork "+f.Id)
		if code, _ := ta.envdGet(t, f.Id, "source-token", "/envs"); code != http.StatusUnauthorized {
			t.Errorf("fork %d: the source's token got %d, want 401", i, code)
		}
		if got := ta.getRPC(t, f.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
			t.Errorf("get fork %d: %v", i, got)
		}
		rec, err := readState(filepath.Join(w.dataDir, "sandboxes", f.Id))
		if err != nil || rec.Status != statusRunning {
			t.Errorf("fork %d state file: %v %v", i, rec.Status, err)
		}
	}
	ta.wantEnvs(t, src.Id, "source-token", envs, "in the source after the fork")
	if got := ta.getRPC(t, src.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING || !got.EndAt.AsTime().Equal(src.EndAt.AsTime()) {
		t.Errorf("source after the fork: %v (its end of life was %v)", got, src.EndAt.AsTime())
	}
	if _, err := os.Stat(filepath.Join(w.dataDir, "sandboxes", src.Id, snapshotDirName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the source's snapshot is kept after the fork: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(w.dataDir, forksDirName)); len(entries) > 0 {
		t.Errorf("the fork's images are kept after the call: %d entries", len(entries))
	}
	// A fork can be forked again.
	resp, err = ta.forkRPC(f1.Id, forkConfig("grandchild"))
	if err != nil || resp.Forks[0].Sandbox == nil {
		t.Fatalf("fork of a fork: %v %v", resp, err)
	}
	ta.wantEnvs(t, resp.Forks[0].Id, "grandchild", envs, "in the fork of a fork")
	for _, id := range []string{f1.Id, f2.Id, resp.Forks[0].Id} {
		ta.destroyRPC(t, id)
	}
	w.onlySource(t, src.Id, "after destroying the forks")
	ta.destroyRPC(t, src.Id)
	w.assertEmpty(t, "after destroying everything")
}

// TestFakeForkRefusals: a paused source, a source of the unique-address
// layout, malformed requests; a fork whose ID exists fails alone.
func TestFakeForkRefusals(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, nil)
	src := ta.create(t, &agentpb.SandboxConfig{TimeoutSeconds: 600})
	dup := forkConfig("a")
	bad := []struct {
		name  string
		id    string
		forks []*agentpb.SandboxConfig
		code  connect.Code
	}{
		{"unknown source", capsulespec.NewID(), []*agentpb.SandboxConfig{forkConfig("a")}, connect.CodeNotFound},
		{"no forks", src.Id, nil, connect.CodeInvalidArgument},
		{"duplicate ids", src.Id, []*agentpb.SandboxConfig{dup, {Id: dup.Id}}, connect.CodeInvalidArgument},
		{"the source's id", src.Id, []*agentpb.SandboxConfig{{Id: src.Id}}, connect.CodeInvalidArgument},
		{"bad id", src.Id, []*agentpb.SandboxConfig{{Id: "short"}}, connect.CodeInvalidArgument},
		{"too many", src.Id, slices.Repeat([]*agentpb.SandboxConfig{forkConfig("a")}, MaxForks+1), connect.CodeInvalidArgument},
	}
	for _, c := range bad {
		if _, err := ta.forkRPC(c.id, c.forks...); connect.CodeOf(err) != c.code {
			t.Errorf("%s: got %v, want %v", c.name, err, c.code)
		}
	}
	w.onlySource(t, src.Id, "after the refused forks")

	other := ta.create(t, nil)
	resp, err := ta.forkRPC(src.Id, &agentpb.SandboxConfig{Id: other.Id}, forkConfig("b"))
	if err != nil {
		t.Fatalf("fork next to an existing id: %v", err)
	}
	if r := resp.Forks[0]; r.Sandbox != nil || r.ErrorCode != connect.CodeAlreadyExists.String() {
		t.Errorf("fork with an existing id: %v, want already_exists", r)
	}
	if r := resp.Forks[1]; r.Sandbox == nil {
		t.Errorf("the other fork failed too: %v", r)
	} else {
		ta.destroyRPC(t, r.Id)
	}
	if got := ta.getRPC(t, other.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
		t.Errorf("the sandbox whose id a fork asked for: %v", got)
	}
	ta.destroyRPC(t, other.Id)

	if _, err := ta.pauseRPC(src.Id, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.forkRPC(src.Id, forkConfig("c")); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("fork of a paused sandbox: %v, want failed_precondition", err)
	}
	ta.destroyRPC(t, src.Id)

	w.net.unique.Store(true)
	old := ta.create(t, nil)
	if _, err := ta.forkRPC(old.Id, forkConfig("d")); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("fork of a sandbox with its own guest address: %v, want failed_precondition", err)
	}
	w.onlySource(t, old.Id, "after the refused fork of an old-layout sandbox")
}

// TestFakeForkFailureInjection fails each fork step in one of two forks
// and each source step of the call: a failed fork leaves nothing, the
// other runs, the source runs on; a failed source step fails the call
// with no fork made. Last, a restarted agent removes the images of a call
// it did not finish and a fork that was not running yet.
func TestFakeForkFailureInjection(t *testing.T) {
	w := newFakeWorld(t)
	var at atomic.Value
	at.Store("")
	var fired atomic.Bool
	var hold atomic.Value // func(), run instead of failing when set
	hold.Store(func() {})
	ta := w.startAgent(t, func(c *Config) {
		c.failAt = func(step string) error {
			if step == at.Load().(string) && fired.CompareAndSwap(false, true) {
				hold.Load().(func())()
				return errInjected
			}
			return nil
		}
	})
	envs := map[string]string{"K": "v"}
	src := ta.create(t, &agentpb.SandboxConfig{AccessToken: "source-token", EnvVars: envs, TimeoutSeconds: 600})
	for _, step := range forkSteps {
		at.Store(step)
		fired.Store(false)
		resp, err := ta.forkRPC(src.Id, forkConfig("one"), forkConfig("two"))
		at.Store("")
		if err != nil {
			t.Fatalf("fork failing at %s: the call failed: %v", step, err)
		}
		var failed, ok []*agentpb.ForkResult
		for _, r := range resp.Forks {
			if r.Sandbox != nil {
				ok = append(ok, r)
			} else {
				failed = append(failed, r)
			}
		}
		if len(failed) != 1 || len(ok) != 1 || !injected(errors.New(failed[0].Error)) {
			t.Fatalf("fork failing at %s: %v, want one fork failed with the injected error", step, resp.Forks)
		}
		ta.wantEnvs(t, ok[0].Id, ok[0].Sandbox.Config.Metadata["fork"], envs, "the fork that did not fail at "+step)
		ta.wantEnvs(t, src.Id, "source-token", envs, "the source after a fork failing at "+step)
		ta.destroyRPC(t, ok[0].Id)
		w.onlySource(t, src.Id, "after a fork failing at "+step)
	}
	for _, step := range forkSourceSteps {
		at.Store(step)
		fired.Store(false)
		_, err := ta.forkRPC(src.Id, forkConfig("one"), forkConfig("two"))
		at.Store("")
		if !injected(err) {
			t.Fatalf("fork failing at %s: %v, want the injected error", step, err)
		}
		if got := ta.getRPC(t, src.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
			t.Fatalf("source after a fork failing at %s: %v", step, got)
		}
		ta.wantEnvs(t, src.Id, "source-token", envs, "the source after a fork failing at "+step)
		if _, err := os.Stat(filepath.Join(w.dataDir, "sandboxes", src.Id, snapshotDirName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after a fork failing at %s: the source's snapshot is kept: %v", step, err)
		}
		w.onlySource(t, src.Id, "after a fork failing at "+step)
	}

	// An agent that stops in the middle of a fork (here: it is dropped
	// while a fork waits for envd) leaves the call's images and a fork
	// that is not running yet; a new agent removes both and adopts the
	// source.
	blocked, release := make(chan struct{}), make(chan struct{})
	at.Store(stepForkHealth)
	fired.Store(false)
	hold.Store(func() { close(blocked); <-release })
	done := make(chan error, 1)
	go func() {
		_, err := ta.Agent.fork(context.Background(), &agentpb.ForkSandboxRequest{Id: src.Id, Forks: []*agentpb.SandboxConfig{forkConfig("cut")}})
		done <- err
	}()
	<-blocked
	if entries, _ := os.ReadDir(filepath.Join(w.dataDir, forksDirName)); len(entries) != 1 {
		t.Fatalf("while a fork waits: %d images directories, want 1", len(entries))
	}
	ta.killed = true
	ta.stop()
	w.net.restart()
	tb := w.startAgent(t, nil)
	if got := tb.getRPC(t, src.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
		t.Errorf("the source after a restart during a fork: %v", got)
	}
	w.onlySource(t, src.Id, "after a restart during a fork")
	close(release)
	<-done
	w.onlySource(t, src.Id, "after the dropped agent's fork gave up")
}

// TestFakeForkMakesRoom: forks refused for memory get it as a create
// does. On a host that commits 1 GiB of limits, with a 256 MiB source, a
// pooled sandbox and a sandbox paused in memory (768 MiB), three forks
// of 256 MiB fit only once the pooled sandbox is gone and the paused one
// is on disk: all three run, the paused one resumes from disk.
func TestFakeForkMakesRoom(t *testing.T) {
	w := newFakeWorld(t)
	const reserve = 1 << 30
	ta := w.startAgent(t, func(c *Config) {
		memoryTier(c)
		withPool(1)(c)
		c.MemoryReserveBytes = reserve
		c.MemoryOvercommit = 1
		c.meminfo = func() (map[string]uint64, error) {
			return map[string]uint64{"MemTotal": reserve + 1<<30, "MemAvailable": reserve + 1<<30}, nil
		}
	})
	ta.waitPooled(t, 1)
	src := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 256, TimeoutSeconds: 600})
	paused := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 256, TimeoutSeconds: 600})
	if _, err := ta.pauseRPC(paused.Id, false); err != nil {
		t.Fatal(err)
	}
	ta.wantPaused(t, paused.Id, tierMemory, "before the fork")
	resp, err := ta.forkRPC(src.Id, forkConfig("a"), forkConfig("b"), forkConfig("c"))
	if err != nil {
		t.Fatalf("fork: %v", err)
	}
	for i, r := range resp.Forks {
		if r.Sandbox == nil {
			t.Errorf("fork %d of 3 on a host with room in its pool and its memory tier: %s %s", i, r.ErrorCode, r.Error)
			continue
		}
		defer ta.destroyRPC(t, r.Sandbox.Id)
	}
	ta.wantPaused(t, paused.Id, tierDisk, "after the forks that needed its memory")
	if n := len(ta.pooled()); n != 0 {
		t.Errorf("%d pooled sandboxes next to forks that needed their memory", n)
	}
	if _, err := ta.resumeRPC(paused.Id); err == nil {
		t.Error("resume with the host's memory all taken by the forks: no refusal")
	}
	ta.destroyRPC(t, src.Id)
	if _, err := ta.resumeRPC(paused.Id); err != nil {
		t.Errorf("resume from disk once the source is gone: %v", err)
	}
	ta.destroyRPC(t, paused.Id)
}
