package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/network"
	"nestbox.dev/internal/proto/agentpb"
)

// The tests in this file and pause_fake_test.go run the agent's logic in
// a fakeWorld: no root, no runsc, milliseconds each. What only a real
// sandbox shows (isolation, the network rules, runsc's checkpoints,
// memory and processes surviving a pause) stays with the tests that use
// gVisor.

// wantEnvs checks, through ta's proxy, that sandbox id's envd requires
// token and holds the env vars want (envd's memory: /init put them there).
func (ta *testAgent) wantEnvs(t testing.TB, id, token string, want map[string]string, when string) {
	t.Helper()
	if code, _ := ta.envdGet(t, id, "", "/envs"); token != "" && code != http.StatusUnauthorized {
		t.Fatalf("%s: /envs without the access token: %d, want 401", when, code)
	}
	code, body := ta.envdGet(t, id, token, "/envs")
	var got map[string]string
	if code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("%s: /envs: %d %s", when, code, body)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: envd's env vars %v, want %s=%s", when, got, k, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Fatalf("%s: envd's env vars %v, want only %v", when, got, want)
		}
	}
}

// TestFakeLifecycle creates a sandbox, reaches its envd through the
// proxy, reads it through every query of the API and its state file,
// destroys it and checks that nothing is left.
func TestFakeLifecycle(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, nil)
	ctx := context.Background()
	envs := map[string]string{"GREETING": "hi"}
	sb := ta.create(t, &agentpb.SandboxConfig{AccessToken: "secret-token", EnvVars: envs, TimeoutSeconds: 600})
	id := sb.Id
	slot, held, built := w.net.slotOf(id)
	if !held || !built || sb.Address != w.net.addr(slot).String() {
		t.Fatalf("created sandbox at %s: slot %d held %v built %v", sb.Address, slot, held, built)
	}
	if sb.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING || sb.EndAt.AsTime().Sub(sb.StartedAt.AsTime()) != 600*time.Second {
		t.Errorf("created sandbox: %v", sb)
	}
	ta.wantEnvs(t, id, "secret-token", envs, "after create")
	if code, _ := ta.envdGet(t, id, "", "/health"); code != http.StatusNoContent {
		t.Errorf("envd /health through the proxy: %d", code)
	}

	got := ta.getRPC(t, id)
	if len(got.Config.GetEnvVars()) != 0 || got.Config.AccessToken != "" || got.Config.MemoryMb != 256 || got.Config.DiskBytes < 64<<20 {
		t.Errorf("get: %v", got)
	}
	if l := ta.list(); len(l) != 1 || l[0].Id != id {
		t.Errorf("list: %v", l)
	}
	m, err := ta.client.GetSandboxMetrics(ctx, connect.NewRequest(&agentpb.GetSandboxMetricsRequest{Id: id}))
	if err != nil {
		t.Fatal(err)
	}
	if mm := m.Msg.Metrics; mm.MemoryUsedBytes != 16<<20 || mm.MemoryTotalBytes != 256<<20 || mm.DiskTotalBytes != uint64(got.Config.DiskBytes) || mm.CpuCount != capsulespec.DefaultVCPUs {
		t.Errorf("metrics: %v", mm)
	}
	ping, err := ta.client.Ping(ctx, connect.NewRequest(&agentpb.PingRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if p := ping.Msg; p.Driver != "fake" || p.Sandboxes != 1 || p.MemoryAllocatedBytes != 256<<20 {
		t.Errorf("ping: %v", p)
	}

	// The state file names the driver and holds what a restart needs.
	rec, err := readState(filepath.Join(w.dataDir, "sandboxes", id))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Version != stateVersion || rec.Driver != "fake" || rec.Status != statusRunning || rec.Network == nil || rec.Network.Slot != slot ||
		rec.Rootfs == nil || rec.Rootfs.Root == "" || !rec.EndAt.Equal(sb.EndAt.AsTime()) {
		t.Errorf("state file: %+v", rec)
	}
	if _, err := os.Stat(filepath.Join(rec.Rootfs.UpperMount, "logs")); err != nil {
		t.Errorf("log directory on the layer: %v", err)
	}

	ta.destroyRPC(t, id)
	if ta.exists(t, id) {
		t.Fatal("sandbox still exists after destroy")
	}
	ta.destroyRPC(t, id) // idempotent
	w.assertEmpty(t, "after destroy")
	if !refused(sb.Address) {
		t.Errorf("envd of a destroyed sandbox still listens at %s", sb.Address)
	}
	code, body := httpGet(t, authClient, ta.envdBase(id)+"/health")
	if code != http.StatusBadGateway || !strings.Contains(body, "The sandbox was not found") {
		t.Errorf("proxy to a destroyed sandbox: %d %s", code, body)
	}
}

// TestFakeCreateRejects checks the errors of invalid creates, including
// one only envd can judge (after the sandbox started), and that none of
// them leaves anything behind.
func TestFakeCreateRejects(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  *agentpb.SandboxConfig
		want connect.Code
	}{
		{"no id", &agentpb.SandboxConfig{Template: "minimal"}, connect.CodeInvalidArgument},
		{"short id", &agentpb.SandboxConfig{Id: "abc"}, connect.CodeInvalidArgument},
		{"unknown template", &agentpb.SandboxConfig{Template: "nope"}, connect.CodeNotFound},
		{"tiny memory", &agentpb.SandboxConfig{MemoryMb: 8}, connect.CodeInvalidArgument},
		{"too many vcpus", &agentpb.SandboxConfig{Vcpus: capsulespec.MaxVCPUs + 1}, connect.CodeInvalidArgument},
		{"negative disk", &agentpb.SandboxConfig{DiskBytes: -1}, connect.CodeInvalidArgument},
		{"ipv6 egress rule", &agentpb.SandboxConfig{AllowOut: []string{"::1"}}, connect.CodeInvalidArgument},
		{"bad env name", &agentpb.SandboxConfig{EnvVars: map[string]string{"A=B": "x"}}, connect.CodeInvalidArgument},
		{"relative workdir", &agentpb.SandboxConfig{DefaultWorkdir: "tmp"}, connect.CodeInvalidArgument},
		{"unknown default user", &agentpb.SandboxConfig{DefaultUser: "nobody-here"}, connect.CodeInvalidArgument},
	} {
		cfg := tc.cfg
		if tc.name != "no id" {
			cfg = testSpec(cfg)
		}
		_, err := ta.client.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: cfg}))
		if got := connect.CodeOf(err); got != tc.want {
			t.Errorf("%s: got %v (%v), want %v", tc.name, got, err, tc.want)
		}
		w.assertEmpty(t, tc.name)
	}
	sb := ta.create(t, &agentpb.SandboxConfig{Id: "dup0000000000000000a"})
	_, err := ta.client.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: testSpec(&agentpb.SandboxConfig{Id: sb.Id})}))
	if connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Errorf("duplicate id: got %v, want already exists", err)
	}
	if code, _ := ta.envdGet(t, sb.Id, "", "/health"); code != http.StatusNoContent {
		t.Errorf("the failed duplicate create broke the original: /health %d", code)
	}
}

// failHook returns a Config.failAt that fails the step stored in at
// ("" fails none) with errInjected.
func failHook(at *atomic.Value) func(string) error {
	at.Store("")
	return func(step string) error {
		if step == at.Load().(string) {
			return errInjected
		}
		return nil
	}
}

func injected(err error) bool {
	return err != nil && strings.Contains(err.Error(), errInjected.Error())
}

// TestFakeCreateFailureInjection fails a create after each of its steps
// and checks that nothing of it is left in any fake (directory, runtime,
// envd, network slot or host network, layer) and which events it sent;
// then a create works.
func TestFakeCreateFailureInjection(t *testing.T) {
	w := newFakeWorld(t)
	sink := newEventSink(t, 0)
	var failAt atomic.Value
	ta := w.startAgent(t, func(c *Config) {
		c.failAt = failHook(&failAt)
		c.EventsURL = sink.url()
	})
	for i, step := range createSteps {
		failAt.Store(step)
		cfg := testSpec(nil)
		_, err := ta.tryCreate(cfg)
		if !injected(err) {
			t.Errorf("create failing at %q: got %v, want the injected error", step, err)
		}
		ta.mu.Lock()
		n := len(ta.sandboxes)
		ta.mu.Unlock()
		if n != 0 {
			t.Errorf("create failing at %q: %d sandboxes registered", step, n)
		}
		w.assertEmpty(t, "create failing at "+step)
		// A create that got as far as the runtime reported it, and
		// reports its end.
		var want []EventType
		if i >= len(createSteps)-4 { // driver, health, init, running
			want = []EventType{EventCreated, EventStopped}
		}
		if want != nil {
			eventually(t, 5*time.Second, "events of a create failing at "+step, func() bool {
				return equalEvents(sink.typesOf(cfg.Id), want)
			})
		} else if got := sink.typesOf(cfg.Id); len(got) != 0 {
			t.Errorf("create failing at %q before the runtime: events %v", step, got)
		}
	}
	failAt.Store("")
	sb := ta.create(t, nil)
	ta.destroyRPC(t, sb.Id)
	w.assertEmpty(t, "after a create and destroy")
}

func equalEvents(got, want []EventType) bool {
	return strings.Join(eventStrings(got), ",") == strings.Join(eventStrings(want), ",")
}

func eventStrings(ev []EventType) []string {
	out := make([]string, len(ev))
	for i, e := range ev {
		out[i] = string(e)
	}
	return out
}

// expireNow moves sandbox id's end of life to now, as if its timeout had
// passed.
func (ta *testAgent) expireNow(id string) {
	ta.mu.Lock()
	ta.sandboxes[id].endAt = time.Now()
	ta.mu.Unlock()
}

// TestFakeTimeout checks the enforcement of lifetimes: an expired sandbox
// is destroyed and reported timed_out, SetTimeout moves the end (and the
// state file's), an auto_pause sandbox is paused at its end and reported
// paused with reason timeout, and a paused sandbox's lifetime is frozen.
// The end of life is moved by the test instead of waited for.
func TestFakeTimeout(t *testing.T) {
	w := newFakeWorld(t)
	sink := newEventSink(t, 0)
	ta := w.startAgent(t, func(c *Config) {
		c.EventsURL = sink.url()
		c.PauseMemoryGrace = -1
	})
	ctx := context.Background()
	short := ta.create(t, &agentpb.SandboxConfig{TimeoutSeconds: 600})
	extended := ta.create(t, &agentpb.SandboxConfig{TimeoutSeconds: 600})
	auto := ta.create(t, &agentpb.SandboxConfig{TimeoutSeconds: 600, AutoPause: true})

	resp, err := ta.client.SetTimeout(ctx, connect.NewRequest(&agentpb.SetTimeoutRequest{Id: extended.Id, TimeoutSeconds: 1200}))
	if err != nil {
		t.Fatal(err)
	}
	end := resp.Msg.EndAt.AsTime()
	if end.Before(time.Now().Add(1100 * time.Second)) {
		t.Errorf("end after SetTimeout(1200s): %s", end)
	}
	if got := ta.getRPC(t, extended.Id).EndAt.AsTime(); !got.Equal(end) {
		t.Errorf("get after SetTimeout: end %s, want %s", got, end)
	}
	if rec, err := readState(filepath.Join(w.dataDir, "sandboxes", extended.Id)); err != nil || !rec.EndAt.Equal(end) {
		t.Errorf("state file after SetTimeout: end %s, %v; want %s", rec.EndAt, err, end)
	}
	for _, tc := range []struct {
		id      string
		seconds uint32
		want    connect.Code
	}{
		{extended.Id, 0, connect.CodeInvalidArgument},
		{"nosuchsandbox0000000", 60, connect.CodeNotFound},
	} {
		if _, err := ta.client.SetTimeout(ctx, connect.NewRequest(&agentpb.SetTimeoutRequest{Id: tc.id, TimeoutSeconds: tc.seconds})); connect.CodeOf(err) != tc.want {
			t.Errorf("SetTimeout(%s, %d): got %v, want %v", tc.id, tc.seconds, err, tc.want)
		}
	}

	ta.expireNow(short.Id)
	eventually(t, 5*time.Second, "expired sandbox removed", func() bool { return ta.lookup(short.Id) == nil })
	eventually(t, 5*time.Second, "timed_out reported", func() bool {
		return equalEvents(sink.typesOf(short.Id), []EventType{EventCreated, EventRunning, EventTimedOut})
	})
	if !refused(short.Address) {
		t.Error("envd of a timed-out sandbox still listens")
	}
	if _, err := ta.client.SetTimeout(ctx, connect.NewRequest(&agentpb.SetTimeoutRequest{Id: short.Id, TimeoutSeconds: 60})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("SetTimeout of a timed-out sandbox: got %v, want not found", err)
	}

	ta.expireNow(auto.Id)
	eventually(t, 5*time.Second, "auto_pause sandbox paused", func() bool {
		return ta.getRPC(t, auto.Id).State == agentpb.SandboxState_SANDBOX_STATE_PAUSED
	})
	eventually(t, 5*time.Second, "paused event", func() bool {
		return equalEvents(sink.typesOf(auto.Id), []EventType{EventCreated, EventRunning, EventPaused})
	})
	sink.mu.Lock()
	for _, ev := range sink.events {
		if ev.SandboxID == auto.Id && ev.Type == EventPaused && ev.Reason != "timeout" {
			t.Errorf("paused event %+v: want reason timeout", ev)
		}
	}
	sink.mu.Unlock()
	if _, err := ta.client.SetTimeout(ctx, connect.NewRequest(&agentpb.SetTimeoutRequest{Id: auto.Id, TimeoutSeconds: 60})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("SetTimeout of a paused sandbox: got %v, want failed_precondition", err)
	}
	// Frozen: no timeout fires on it, however long it stays paused.
	if got := ta.getRPC(t, auto.Id); got.EndAt != nil {
		t.Errorf("paused sandbox has an end of life: %v", got.EndAt)
	}

	if !ta.exists(t, extended.Id) {
		t.Error("the sandbox with an extended timeout is gone")
	}
}

// TestFakeRestartAdoption stops an agent as a crash would and starts
// another on the same data dir and host: the sandbox that still runs is
// adopted (timeout, slot, proxy), one that died meanwhile is removed and
// reported crashed, paused ones stay paused in their tier and resume, and
// leftovers without a state file (a runtime sandbox, a host network, a
// directory) are removed.
func TestFakeRestartAdoption(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, func(c *Config) { c.PauseMemoryGrace = time.Hour })
	ctx := context.Background()
	envs := map[string]string{"K": "v"}
	running := ta.create(t, &agentpb.SandboxConfig{TimeoutSeconds: 600, AccessToken: "tok", EnvVars: envs})
	dies := ta.create(t, nil)
	onDisk := ta.create(t, &agentpb.SandboxConfig{AccessToken: "tok", EnvVars: envs})
	inMemory := ta.create(t, &agentpb.SandboxConfig{AccessToken: "tok", EnvVars: envs})
	if _, err := ta.pauseRPC(inMemory.Id, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.pauseRPC(onDisk.Id, false); err != nil {
		t.Fatal(err)
	}
	if err := ta.demoteNow(t, onDisk.Id); err != nil {
		t.Fatal(err)
	}
	endAt := ta.getRPC(t, running.Id).EndAt.AsTime()
	ta.kill()

	// While no agent runs: one sandbox dies, and crashed creates left a
	// runtime sandbox (with its network), a host network and a directory
	// with no state file.
	w.driver.Crash(dies.Id)
	const strayRuntime, strayNet, strayDir = "strayruntime00000000", "straynetwork00000000", "straydirectory000000"
	for _, id := range []string{strayRuntime, strayNet} {
		if _, err := w.net.Setup(ctx, id, network.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.driver.Create(ctx, driver.Spec{ID: strayRuntime, Dir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(w.dataDir, "sandboxes", strayDir), 0o700); err != nil {
		t.Fatal(err)
	}
	w.net.restart()

	sink := newEventSink(t, 0)
	tb := w.startAgent(t, func(c *Config) {
		c.PauseMemoryGrace = time.Hour
		c.EventsURL = sink.url()
	})
	got := tb.getRPC(t, running.Id)
	if got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING || !got.EndAt.AsTime().Equal(endAt) || got.Address != running.Address {
		t.Errorf("adopted sandbox: %v; want running until %s at %s", got, endAt, running.Address)
	}
	if _, held, built := w.net.slotOf(running.Id); !held || !built {
		t.Errorf("adopted sandbox's network: slot held %v, built %v", held, built)
	}
	tb.wantEnvs(t, running.Id, "tok", envs, "through the new agent's proxy")
	if tb.exists(t, dies.Id) {
		t.Error("a sandbox that died while the agent was down is listed")
	}
	eventually(t, 5*time.Second, "crashed reported", func() bool { return equalEvents(sink.typesOf(dies.Id), []EventType{EventCrashed}) })
	tb.wantPaused(t, onDisk.Id, tierDisk, "after a restart")
	tb.wantPaused(t, inMemory.Id, tierMemory, "after a restart")
	if st := tb.runtimeState(t, inMemory.Id); st != driver.StatePaused {
		t.Errorf("runtime of the memory-tier sandbox after a restart: %s, want paused", st)
	}
	if st := tb.runtimeState(t, strayRuntime); st != driver.StateNotFound {
		t.Errorf("runtime sandbox without a state file: %s, want removed", st)
	}
	for _, id := range []string{strayRuntime, strayNet} {
		if _, held, built := w.net.slotOf(id); held || built {
			t.Errorf("network of %s, which has no state file: slot held %v, built %v; want removed", id, held, built)
		}
	}
	if _, err := os.Stat(filepath.Join(w.dataDir, "sandboxes", strayDir)); !os.IsNotExist(err) {
		t.Errorf("directory without a state file: %v, want removed", err)
	}

	for _, id := range []string{onDisk.Id, inMemory.Id} {
		if _, err := tb.resumeRPC(id); err != nil {
			t.Fatalf("resume %s after a restart: %v", id, err)
		}
		tb.wantEnvs(t, id, "tok", envs, "resumed after a restart")
	}
	tb.destroyAll(t)
	w.assertEmpty(t, "after destroying everything")
}

// TestFakeAdmission checks refusals for room: the sandbox count, and
// memory, where a sandbox paused in memory is moved to disk to make room
// for a create, and a resume from disk that does not fit is refused and
// leaves the sandbox paused. A refused create leaves nothing behind.
func TestFakeAdmission(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, func(c *Config) { c.MaxSandboxes = 1 })
	first := ta.create(t, nil)
	if _, err := ta.tryCreate(nil); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("create past MaxSandboxes: got %v, want resource_exhausted", err)
	}
	ta.destroyRPC(t, first.Id)
	w.assertEmpty(t, "after a refused create")
	ta.stop()

	// Room for one and a half sandboxes of 256 MiB.
	mem, err := readMeminfo()
	if err != nil {
		t.Fatal(err)
	}
	tb := w.startAgent(t, func(c *Config) {
		c.MemoryOvercommit = float64(384<<20) / float64(mem["MemTotal"])
		c.PauseMemoryGrace = time.Hour
	})
	a := tb.create(t, nil)
	if _, err := tb.tryCreate(nil); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("create past the memory commit: got %v, want resource_exhausted", err)
	}
	if _, err := tb.pauseRPC(a.Id, false); err != nil {
		t.Fatal(err)
	}
	tb.wantPaused(t, a.Id, tierMemory, "after the pause")
	// The memory tier holds its memory until a create needs it.
	b := tb.create(t, nil)
	tb.wantPaused(t, a.Id, tierDisk, "after a create needed its memory")
	if st := tb.runtimeState(t, a.Id); st != driver.StateNotFound {
		t.Errorf("runtime of the demoted sandbox: %s, want none", st)
	}
	if _, err := tb.resumeRPC(a.Id); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("resume past the memory commit: got %v, want resource_exhausted", err)
	}
	tb.wantPaused(t, a.Id, tierDisk, "after a refused resume")
	tb.destroyRPC(t, b.Id)
	if _, err := tb.resumeRPC(a.Id); err != nil {
		t.Fatalf("resume once there is room: %v", err)
	}
}

// TestFakeEvents checks the events of a destroy and of a crash the
// monitor finds (the runtime died behind the agent's back), and that they
// carry the host's ID and token.
func TestFakeEvents(t *testing.T) {
	w := newFakeWorld(t)
	sink := newEventSink(t, 1)
	sink.token = "host-secret"
	ta := w.startAgent(t, func(c *Config) {
		c.EventsURL = sink.url()
		c.EventsToken = sink.token
		c.HostID = "host-1"
	})
	destroyed := ta.create(t, nil)
	crashed := ta.create(t, nil)
	ta.destroyRPC(t, destroyed.Id)
	w.driver.Crash(crashed.Id)
	eventually(t, 5*time.Second, "crashed sandbox removed", func() bool { return ta.lookup(crashed.Id) == nil })
	for id, want := range map[string][]EventType{
		destroyed.Id: {EventCreated, EventRunning, EventStopped},
		crashed.Id:   {EventCreated, EventRunning, EventCrashed},
	} {
		eventually(t, 5*time.Second, "events of "+id, func() bool { return equalEvents(sink.typesOf(id), want) })
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, ev := range sink.events {
		if ev.HostID != "host-1" || ev.At.IsZero() {
			t.Errorf("event %+v: want host-1 and a time", ev)
		}
	}
	if sink.requests < len(sink.events)+1 {
		t.Errorf("%d requests for %d events: the failed post was not retried", sink.requests, len(sink.events))
	}
	w.assertEmpty(t, "after the crash")
}
