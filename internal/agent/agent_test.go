package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/proto/agentpb"
)

// TestLifecycle creates a sandbox, runs a command and moves a file through
// the agent's proxy as E2B's SDK would, reads its metrics, destroys it and
// checks that nothing is left on the host.
func TestLifecycle(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", nil)
	ctx := context.Background()

	sb := ta.create(t, &agentpb.SandboxConfig{
		Template:       "minimal",
		AccessToken:    "secret-token",
		EnvVars:        map[string]string{"GREETING": "hi"},
		TimeoutSeconds: 600,
	})
	id := sb.Id
	if !capsulespec.ValidID(id) {
		t.Errorf("id %q is not %d characters [a-z0-9]", id, capsulespec.IDLength)
	}
	if sb.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING || sb.Address == "" || sb.EnvdVersion == "" {
		t.Errorf("created sandbox: %v", sb)
	}
	if got := sb.EndAt.AsTime().Sub(sb.StartedAt.AsTime()); got != 600*time.Second {
		t.Errorf("end - start = %s, want 10m", got)
	}

	// The token /init set is required.
	if _, _, err := sh(ctx, ta.process(id, "", ""), "true"); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("command without the access token: got %v, want unauthenticated", err)
	}
	pc := ta.process(id, "secret-token", "")
	if out := mustSh(t, pc, "echo $GREETING; id -un"); out != "hi\nuser\n" {
		t.Errorf("echo through the proxy: got %q, want %q", out, "hi\nuser\n")
	}

	// /files through the proxy.
	hc := &http.Client{Transport: envdAuth{token: "secret-token"}}
	fileURL := ta.envdBase(id) + "/files?path=/home/user/hello.txt"
	resp, err := hc.Post(fileURL, "application/octet-stream", strings.NewReader("hello from the host"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: %s", resp.Status)
	}
	if code, body := httpGet(t, hc, fileURL); code != http.StatusOK || body != "hello from the host" {
		t.Errorf("download: %d %q", code, body)
	}
	if out := mustSh(t, pc, "cat /home/user/hello.txt"); out != "hello from the host" {
		t.Errorf("file inside the sandbox: %q", out)
	}

	// The API's views of it.
	got, err := ta.client.GetSandbox(ctx, connect.NewRequest(&agentpb.GetSandboxRequest{Id: id}))
	if err != nil || len(got.Msg.Sandbox.Config.GetEnvVars()) != 0 || got.Msg.Sandbox.Config.MemoryMb != 256 {
		t.Errorf("get: %v, %v", got, err)
	}
	list, err := ta.client.ListSandboxes(ctx, connect.NewRequest(&agentpb.ListSandboxesRequest{}))
	if err != nil || len(list.Msg.Sandboxes) != 1 || list.Msg.Sandboxes[0].Id != id {
		t.Errorf("list: %v, %v", list, err)
	}
	mustSh(t, pc, "dd if=/dev/zero of=/home/user/blob bs=1M count=8 2>/dev/null; sync")
	m, err := ta.client.GetSandboxMetrics(ctx, connect.NewRequest(&agentpb.GetSandboxMetricsRequest{Id: id}))
	if err != nil {
		t.Fatal(err)
	}
	if mm := m.Msg.Metrics; mm.MemoryUsedBytes == 0 || mm.MemoryTotalBytes != 256<<20 || mm.DiskTotalBytes == 0 ||
		mm.DiskTotalBytes != uint64(got.Msg.Sandbox.Config.GetDiskBytes()) || // the size the control plane records
		mm.DiskUsedBytes < 8<<20 || mm.CpuCount != capsulespec.DefaultVCPUs || mm.CpuUsedPct < 0 || mm.CpuUsedPct > 100 {
		t.Errorf("metrics: %v", mm)
	}
	ping, err := ta.client.Ping(ctx, connect.NewRequest(&agentpb.PingRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if p := ping.Msg; p.Driver != "gvisor" || p.Sandboxes != 1 || p.VcpusAllocated != capsulespec.DefaultVCPUs || p.MemoryAllocatedBytes != 256<<20 ||
		p.Cpus == 0 || p.MemoryTotalBytes == 0 || p.DiskTotalBytes == 0 {
		t.Errorf("ping: %v", p)
	}
	if code, _ := httpGet(t, authClient, ta.base+"/health"); code != http.StatusOK {
		t.Errorf("agent /health: %d", code)
	}

	ta.destroyRPC(t, id)
	if ta.exists(t, id) {
		t.Fatal("sandbox still exists after destroy")
	}
	ta.destroyRPC(t, id) // idempotent
	assertClean(t, h.dataDir)

	// The proxy knows it is gone.
	code, body := httpGet(t, authClient, ta.envdBase(id)+"/health")
	var e struct {
		Code      int    `json:"code"`
		Message   string `json:"message"`
		SandboxID string `json:"sandboxId"`
	}
	json.Unmarshal([]byte(body), &e)
	if code != http.StatusBadGateway || e.Code != 502 || e.SandboxID != id || e.Message != "The sandbox was not found" {
		t.Errorf("proxy to a destroyed sandbox: %d %s", code, body)
	}
}

// TestCreateRejects checks the errors of invalid creates; none of them
// leaves anything behind.
func TestCreateRejects(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  *agentpb.SandboxConfig
		want connect.Code
	}{
		{"no id (the control plane makes them)", &agentpb.SandboxConfig{Id: "", Template: "minimal"}, connect.CodeInvalidArgument},
		{"short id", &agentpb.SandboxConfig{Id: "abc"}, connect.CodeInvalidArgument},
		{"upper-case id", &agentpb.SandboxConfig{Id: "ABCDEFGHIJKLMNOPQRST"}, connect.CodeInvalidArgument},
		{"unknown template", &agentpb.SandboxConfig{Template: "nope"}, connect.CodeNotFound},
		{"tiny memory", &agentpb.SandboxConfig{MemoryMb: 8}, connect.CodeInvalidArgument},
		{"ipv6 egress rule", &agentpb.SandboxConfig{AllowOut: []string{"::1"}}, connect.CodeInvalidArgument},
		{"bad env name", &agentpb.SandboxConfig{EnvVars: map[string]string{"A=B": "x"}}, connect.CodeInvalidArgument},
		{"relative workdir", &agentpb.SandboxConfig{DefaultWorkdir: "tmp"}, connect.CodeInvalidArgument},
		// Only envd knows the template's users: this one fails late, after
		// the sandbox started, and is unwound.
		{"unknown default user", &agentpb.SandboxConfig{DefaultUser: "nobody-here"}, connect.CodeInvalidArgument},
	} {
		cfg := tc.cfg
		if !strings.HasPrefix(tc.name, "no id") {
			cfg = testSpec(cfg)
		}
		_, err := ta.client.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: cfg}))
		if got := connect.CodeOf(err); got != tc.want {
			t.Errorf("%s: got %v (%v), want %v", tc.name, got, err, tc.want)
		}
	}
	// A second create with the ID of a running sandbox.
	sb := ta.create(t, &agentpb.SandboxConfig{Id: "dup0000000000000000a"})
	_, err := ta.client.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: testSpec(&agentpb.SandboxConfig{Id: sb.Id})}))
	if connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Errorf("duplicate id: got %v, want already exists", err)
	}
	if !ta.exists(t, sb.Id) {
		t.Error("the failed duplicate create removed the original")
	}
	ta.destroyRPC(t, sb.Id)
	for _, call := range []func() error{
		func() error {
			_, err := ta.client.SetTimeout(ctx, connect.NewRequest(&agentpb.SetTimeoutRequest{Id: sb.Id, TimeoutSeconds: 5}))
			return err
		},
		func() error {
			_, err := ta.client.GetSandboxMetrics(ctx, connect.NewRequest(&agentpb.GetSandboxMetricsRequest{Id: sb.Id}))
			return err
		},
	} {
		if err := call(); connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("call on a destroyed sandbox: got %v, want not found", err)
		}
	}
	assertClean(t, h.dataDir)
}

// TestFailureInjection makes each step of a create fail in turn and checks
// that the failed create left nothing behind, then that a create works.
func TestFailureInjection(t *testing.T) {
	h := newTestHost(t)
	var failAt atomic.Value // string
	failAt.Store("")
	ta := h.startAgent(t, "", func(c *Config) {
		c.failAt = func(step string) error {
			if step == failAt.Load().(string) {
				return errInjected
			}
			return nil
		}
	})
	ctx := context.Background()
	for _, step := range createSteps {
		failAt.Store(step)
		_, err := ta.client.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: testSpec(nil)}))
		if err == nil || !strings.Contains(err.Error(), errInjected.Error()) {
			t.Errorf("create failing at %q: got %v, want the injected error", step, err)
		}
		if n := len(ta.list()); n != 0 {
			t.Errorf("failing at %q: %d sandboxes listed", step, n)
		}
		ta.mu.Lock()
		n := len(ta.sandboxes)
		ta.mu.Unlock()
		if n != 0 {
			t.Errorf("failing at %q: %d sandboxes registered", step, n)
		}
		if problems := leftovers(h.dataDir); len(problems) > 0 {
			// Give asynchronous releases their time before reporting.
			assertClean(t, h.dataDir)
			if t.Failed() {
				t.Fatalf("leftovers after a create failing at %q", step)
			}
		}
	}
	failAt.Store("")
	sb := ta.create(t, &agentpb.SandboxConfig{})
	mustSh(t, ta.process(sb.Id, "", ""), "true")
	ta.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}

type injectedError struct{}

func (injectedError) Error() string { return "injected failure" }

var errInjected = injectedError{}

func TestParseProxyPath(t *testing.T) {
	for _, tc := range []struct {
		in       string
		id       string
		port     int
		rest     string
		ok       bool
		location string
	}{
		{"/proxy/abc/8080", "abc", 8080, "/", true, ""},
		{"/proxy/abc/8080/", "abc", 8080, "/", true, ""},
		{"/proxy/abc/8080/dir/", "abc", 8080, "/dir/", true, ""},
		{"/proxy/abc/8080/a%2Fb/c", "abc", 8080, "/a%2Fb/c", true, ""},
		{"/proxy/abc/x/", "", 0, "", false, ""},
		{"/proxy/abc/0/", "", 0, "", false, ""},
		{"/proxy/abc/70000/", "", 0, "", false, ""},
		{"/proxy/abc/+80/", "", 0, "", false, ""},
		{"/proxy//80/", "", 0, "", false, ""},
		{"/proxy/abc", "", 0, "", false, ""},
	} {
		id, port, rest, ok := parseProxyPath(tc.in)
		if id != tc.id || port != tc.port || rest != tc.rest || ok != tc.ok {
			t.Errorf("parseProxyPath(%q) = %q %d %q %v, want %q %d %q %v", tc.in, id, port, rest, ok, tc.id, tc.port, tc.rest, tc.ok)
		}
	}
}

func TestRewriteLocation(t *testing.T) {
	const prefix, target = "/proxy/abc/8080", "10.0.0.2:8080"
	for _, tc := range []struct{ in, want string }{
		{"/login?next=/x", "/proxy/abc/8080/login?next=/x"},
		{"/dir/", "/proxy/abc/8080/dir/"},
		{"http://10.0.0.2:8080/a/b", "/proxy/abc/8080/a/b"},
		{"http://localhost:8080", "/proxy/abc/8080/"},
		{"https://example.com/x", "https://example.com/x"},
		{"relative/path", "relative/path"},
	} {
		if got := rewriteLocation(tc.in, prefix, target, 8080); got != tc.want {
			t.Errorf("rewriteLocation(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
