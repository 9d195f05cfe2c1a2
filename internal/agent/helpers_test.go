package agent

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/agentpb/agentpbconnect"
	"nestbox.dev/internal/proto/processpb"
	"nestbox.dev/internal/proto/processpb/processpbconnect"
	"nestbox.dev/internal/testenv"
)

// The tests' own corner of the host: a network prefix and range no other
// package's tests use, a cgroup parent, and a fake "internet host" at a
// documentation address (203.0.113.0/24, which the default egress deny
// list lets through) in a namespace of its own, so no packet leaves the
// machine. Tests in this package run one after another:
// agents with one prefix treat each other's namespaces as leftovers.
const (
	testPrefix = "nba"
	testCIDR   = "10.214.0.0/24"
	testCgroup = "/nestbox-agent-test"
	extNS      = "nbatest-ext" // not "nba-...": that would be a sandbox's
	extLink    = "nbatx0"
	extHost    = "203.0.113.5"
	extAddr    = "203.0.113.6"
)

// TestMain doubles as a tiny HTTP server started inside network namespaces
// and as a host agent run as a child process (the restart test kills it
// with SIGKILL).
func TestMain(m *testing.M) {
	if addr := os.Getenv("NBA_SERVE_ADDR"); addr != "" {
		http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // uploads (the rate-limit test) are read whole
			w.Write([]byte("ok"))
		}))
		os.Exit(1)
	}
	if cfg := os.Getenv("NBA_AGENT_CHILD"); cfg != "" {
		os.Exit(childAgent(cfg))
	}
	code := m.Run()
	if templatesDir != "" {
		os.RemoveAll(templatesDir)
	}
	os.Exit(code)
}

// childConfig is the part of Config a child agent gets through its
// environment.
type childConfig struct {
	DataDir, Runsc, Envd, TemplateDir, CgroupParent, NetworkCIDR, NetworkPrefix string
	DefaultRootfsSize                                                           int64
	DefaultMemoryMB                                                             int
	// KillAt, if set, is a step of a pause or resume ("pause-sync") after
	// which the child kills its own process group with SIGKILL, at once
	// or after a delay ("pause-sync+150ms": during the next step).
	KillAt string
	// PauseMemoryGrace is Config.PauseMemoryGrace.
	PauseMemoryGrace time.Duration
}

// killHook returns a failAt hook that SIGKILLs this process's group after
// the step named by killAt (see childConfig.KillAt).
func killHook(killAt string) (func(string) error, error) {
	step, after, _ := strings.Cut(killAt, "+")
	var delay time.Duration
	if after != "" {
		d, err := time.ParseDuration(after)
		if err != nil {
			return nil, fmt.Errorf("kill at %q: %w", killAt, err)
		}
		delay = d
	}
	return func(name string) error {
		if name != step {
			return nil
		}
		if delay == 0 {
			unix.Kill(0, unix.SIGKILL)
		}
		go func() {
			time.Sleep(delay)
			unix.Kill(0, unix.SIGKILL)
		}()
		return nil
	}, nil
}

// childAgent runs an agent until killed and prints its address.
func childAgent(raw string) int {
	var c childConfig
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	cfg := Config{
		Token:   testToken,
		DataDir: c.DataDir, Runsc: c.Runsc, Envd: c.Envd, TemplateDir: c.TemplateDir, CgroupParent: c.CgroupParent,
		NetworkCIDR: c.NetworkCIDR, NetworkPrefix: c.NetworkPrefix, DefaultRootfsSize: c.DefaultRootfsSize,
		DefaultMemoryMB: c.DefaultMemoryMB, PauseMemoryGrace: c.PauseMemoryGrace,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if c.KillAt != "" {
		hook, err := killHook(c.KillAt)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		cfg.failAt = hook
	}
	a, err := New(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Printf("ADDR %s\n", ln.Addr())
	go a.Run(ctx)
	a.Serve(ctx, ln)
	return 0
}

// prereqs are the binaries the tests need.
type prereqs struct {
	runsc, envd string
}

var (
	templatesOnce sync.Once
	templatesDir  string
	envdOnce      sync.Once
	envdProblem   string
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "../..")
}

// requirePrereqs skips (fails in CI) unless the tests can run real
// sandboxes here.
func requirePrereqs(t testing.TB) prereqs {
	t.Helper()
	testenv.RequireRoot(t)
	for _, tool := range []string{"ip", "nft", "mkfs.ext4", "mount"} {
		testenv.RequireCommand(t, tool)
	}
	p := prereqs{runsc: os.Getenv("NESTBOX_RUNSC"), envd: os.Getenv("NESTBOX_ENVD")}
	if p.runsc == "" {
		p.runsc = filepath.Join(repoRoot(), "bin/runsc")
	}
	if p.envd == "" {
		p.envd = filepath.Join(repoRoot(), "bin/envd")
	}
	if _, err := os.Stat(p.runsc); err != nil {
		testenv.Missing(t, "runsc not built (make runsc): "+err.Error())
	}
	// The sandboxes' first process must be Nestbox's envd, not a stand-in
	// that only answers /health.
	envdOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, p.envd, "--version").Output(); err != nil || len(strings.TrimSpace(string(out))) == 0 {
			envdProblem = fmt.Sprintf("%s is not a built envd (make envd, or set NESTBOX_ENVD): %v", p.envd, err)
		}
	})
	if envdProblem != "" {
		testenv.Missing(t, envdProblem)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Missing(t, "busybox-static not installed")
	}
	templatesOnce.Do(func() {
		// One template directory for the whole run: every agent of the
		// tests shares the minimal template, built once.
		templatesDir, _ = os.MkdirTemp("", "nba-templates-")
	})
	return p
}

// testHost prepares a test's host-wide state and removes it at the end of
// the test, after every agent of the test: the nft table, runsc's gofer
// namespace mount, the cgroup parent.
type testHost struct {
	p       prereqs
	dataDir string
}

func newTestHost(t testing.TB) *testHost {
	t.Helper()
	p := requirePrereqs(t)
	h := &testHost{p: p, dataDir: t.TempDir()}
	t.Cleanup(func() {
		ctx := context.Background()
		// runsc may have mounted it more than once.
		for range 10 {
			if unix.Unmount(filepath.Join(h.dataDir, "runsc", "null-netns"), unix.MNT_DETACH) != nil {
				break
			}
		}
		exec.CommandContext(ctx, "nft", "delete", "table", "inet", testPrefix+"_nestbox").Run()
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + testCgroup)
		for _, d := range dirs {
			os.Remove(d)
		}
	})
	return h
}

func (h *testHost) config() Config {
	return Config{
		DataDir:           h.dataDir,
		Token:             testToken,
		Runsc:             h.p.runsc,
		Envd:              h.p.envd,
		TemplateDir:       templatesDir,
		CgroupParent:      testCgroup,
		NetworkCIDR:       testCIDR,
		NetworkPrefix:     testPrefix,
		DefaultRootfsSize: 256 << 20,
		DefaultMemoryMB:   256,
		MonitorInterval:   time.Second,
		Logger:            testLogger(),
	}
}

func testLogger() *slog.Logger {
	if testing.Verbose() || os.Getenv("NBA_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// testAgent is an agent serving on a real listener, with a Connect client.
type testAgent struct {
	*Agent
	addr   string // host:port
	base   string // http://host:port
	client agentpbconnect.AgentClient
	stop   func() // stops Run and Serve; sandboxes stay

	killed bool // dropped without destroying its sandboxes
}

// startAgent starts an agent on h's data dir. At the end of the test it
// destroys the sandboxes the agent still has, then stops it. listen ""
// means 127.0.0.1:0.
func (h *testHost) startAgent(t testing.TB, listen string, edit func(*Config)) *testAgent {
	t.Helper()
	cfg := h.config()
	if edit != nil {
		edit(&cfg)
	}
	return serveAgent(t, cfg, listen)
}

// serveAgent makes an agent of cfg and serves it on listen ("" for a free
// loopback port). At the end of the test it destroys the sandboxes it
// still has (unless killed), then stops.
func serveAgent(t testing.TB, cfg Config, listen string) *testAgent {
	t.Helper()
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("new agent: %v", err)
	}
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(ctx) })
	wg.Go(func() { a.Serve(ctx, ln) })
	var once sync.Once
	ta := &testAgent{
		Agent: a,
		addr:  ln.Addr().String(),
		base:  "http://" + ln.Addr().String(),
		stop:  func() { once.Do(func() { cancel(); wg.Wait() }) },
	}
	ta.client = agentpbconnect.NewAgentClient(authClient, ta.base)
	t.Cleanup(func() {
		if ta.killed {
			ta.stop()
			return
		}
		// Stopped first: its warm pools' fill loop would refill what
		// destroyAll removes.
		ta.stop()
		ta.destroyAll(t)
	})
	return ta
}

// kill drops the agent as a crash would: its background work and server
// stop, its sandboxes keep running, nothing is cleaned up.
func (ta *testAgent) kill() {
	ta.killed = true
	ta.stop()
}

func (ta *testAgent) destroyAll(t testing.TB) {
	ta.mu.Lock()
	var ids []string
	for id := range ta.sandboxes {
		ids = append(ids, id)
	}
	ta.mu.Unlock()
	for _, id := range ids {
		if err := ta.destroy(context.Background(), id); err != nil {
			t.Errorf("cleanup: destroy %s: %v", id, err)
		}
	}
	for _, sb := range ta.pooled() {
		if _, err := ta.removePooled(context.Background(), sb); err != nil {
			t.Errorf("cleanup: remove pooled sandbox %s: %v", sb.rid, err)
		}
	}
}

// pooled returns the agent's pooled sandboxes that are ready.
func (ta *testAgent) pooled() []*sandbox {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	var out []*sandbox
	for _, sb := range ta.sandboxes {
		if sb.pooled && sb.ready && sb.status == statusPooled {
			out = append(out, sb)
		}
	}
	return out
}

// create creates a sandbox through the API and fails the test on error.
func (ta *testAgent) create(t testing.TB, cfg *agentpb.SandboxConfig) *agentpb.Sandbox {
	t.Helper()
	sb, err := ta.tryCreate(cfg)
	if err != nil {
		t.Fatalf("create sandbox: %v", err)
	}
	return sb
}

// testSpec completes cfg as the control plane would, for the tests: an ID
// when it has none, and the minimal template (quick to build) when it
// names none.
func testSpec(cfg *agentpb.SandboxConfig) *agentpb.SandboxConfig {
	if cfg == nil {
		cfg = &agentpb.SandboxConfig{}
	}
	if cfg.Id == "" {
		cfg.Id = capsulespec.NewID()
	}
	if cfg.Template == "" {
		cfg.Template = "minimal"
	}
	return cfg
}

// tryCreate creates a sandbox through the API; for goroutines, which must
// not call t.Fatal.
func (ta *testAgent) tryCreate(cfg *agentpb.SandboxConfig) (*agentpb.Sandbox, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	resp, err := ta.client.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: testSpec(cfg)}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.Sandbox, nil
}

func (ta *testAgent) destroyRPC(t testing.TB, id string) {
	t.Helper()
	if _, err := ta.client.DestroySandbox(context.Background(), connect.NewRequest(&agentpb.DestroySandboxRequest{Id: id})); err != nil {
		t.Fatalf("destroy %s: %v", id, err)
	}
}

// exists reports whether GetSandbox finds id.
func (ta *testAgent) exists(t testing.TB, id string) bool {
	t.Helper()
	_, err := ta.client.GetSandbox(context.Background(), connect.NewRequest(&agentpb.GetSandboxRequest{Id: id}))
	if connect.CodeOf(err) == connect.CodeNotFound {
		return false
	}
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return true
}

// waitGone polls until GetSandbox no longer finds id, failing after bound.
func (ta *testAgent) waitGone(t testing.TB, id string, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for ta.exists(t, id) {
		if time.Now().After(deadline) {
			t.Fatalf("sandbox %s still exists after %s", id, bound)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// envdAuth adds envd's access token and a Basic-auth user to every request.
type envdAuth struct {
	token, user string
}

func (e envdAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if e.token != "" {
		r.Header.Set("X-Access-Token", e.token)
	}
	if e.user != "" {
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(e.user+":")))
	}
	return agentAuth{}.RoundTrip(r)
}

// testToken is the agent token of the test agents.
const testToken = "test-agent-token-0123456789abcdef0123456789abcdef"

// agentAuth presents testToken as the control plane does: Authorization
// on the API, ProxyAuthHeader on /proxy/.
type agentAuth struct{}

func (agentAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if strings.HasPrefix(r.URL.Path, "/proxy/") {
		r.Header.Set(ProxyAuthHeader, "Bearer "+testToken)
	} else {
		r.Header.Set("Authorization", "Bearer "+testToken)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// authClient is an HTTP client of the test agents.
var authClient = &http.Client{Transport: agentAuth{}}

// envdBase is the base URL of sandbox id's envd through the agent's proxy.
func (ta *testAgent) envdBase(id string) string {
	return fmt.Sprintf("%s/proxy/%s/%d", ta.base, id, EnvdPort)
}

// process returns an envd process client through the proxy, as E2B's SDK
// talks to envd (Connect protocol, JSON codec).
func (ta *testAgent) process(id, token, user string) processpbconnect.ProcessClient {
	hc := &http.Client{Transport: envdAuth{token: token, user: user}}
	return processpbconnect.NewProcessClient(hc, ta.envdBase(id), connect.WithProtoJSON())
}

// sh runs a shell command in a sandbox through envd and returns its
// combined output and exit code.
func sh(ctx context.Context, pc processpbconnect.ProcessClient, cmd string) (string, int, error) {
	stream, err := pc.Start(ctx, connect.NewRequest(&processpb.StartRequest{
		Process: &processpb.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-c", cmd}},
	}))
	if err != nil {
		return "", 0, err
	}
	defer stream.Close()
	var out strings.Builder
	for stream.Receive() {
		ev := stream.Msg().GetEvent()
		if d := ev.GetData(); d != nil {
			out.Write(d.GetStdout())
			out.Write(d.GetStderr())
		}
		if end := ev.GetEnd(); end != nil {
			return out.String(), int(end.GetExitCode()), nil
		}
	}
	if err := stream.Err(); err != nil {
		return out.String(), 0, err
	}
	return out.String(), 0, errors.New("stream ended without an end event")
}

// mustSh runs cmd and fails the test unless it exits 0.
func mustSh(t testing.TB, pc processpbconnect.ProcessClient, cmd string) string {
	t.Helper()
	out, err := shOK(pc, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// shOK runs cmd and returns an error unless it exits 0; for goroutines,
// which must not call t.Fatal.
func shOK(pc processpbconnect.ProcessClient, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, code, err := sh(ctx, pc, cmd)
	if err != nil || code != 0 {
		return out, fmt.Errorf("%q: exit %d, err %v, output %q", cmd, code, err, out)
	}
	return out, nil
}

// assertClean checks that nothing of any sandbox is left on the host:
// mounts, loop devices, network namespaces, links, nft chains, runtime
// containers and processes, cgroups, sandbox directories. Some of it
// (lazily detached mounts and their loop devices) goes asynchronously, so
// it polls with a generous bound.
func assertClean(t testing.TB, dataDir string) {
	t.Helper()
	var problems []string
	for deadline := time.Now().Add(20 * time.Second); ; {
		problems = leftovers(dataDir)
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

func leftovers(dataDir string) []string {
	var out []string
	sbDir := filepath.Join(dataDir, "sandboxes")
	if points, _ := mountsUnder(sbDir); len(points) > 0 {
		out = append(out, fmt.Sprintf("mounts left: %v", points))
	}
	if entries, _ := os.ReadDir(sbDir); len(entries) > 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		out = append(out, fmt.Sprintf("sandbox directories left: %v", names))
	}
	loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, lf := range loops {
		if b, _ := os.ReadFile(lf); strings.Contains(string(b), dataDir) {
			out = append(out, fmt.Sprintf("loop device %s still backs %s", lf, strings.TrimSpace(string(b))))
		}
	}
	if nss, _ := filepath.Glob("/var/run/netns/" + testPrefix + "-*"); len(nss) > 0 {
		out = append(out, fmt.Sprintf("network namespaces left: %v", nss))
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, testPrefix+"h") {
			out = append(out, "link left: "+i.Name)
		}
	}
	if b, err := exec.Command("nft", "list", "table", "inet", testPrefix+"_nestbox").CombinedOutput(); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(line, "chain sb") || sandboxLink.MatchString(line) {
				out = append(out, "nft rule left: "+line)
			}
		}
	}
	if b, _ := exec.Command(filepath.Join(repoRoot(), "bin/runsc"), "--root="+filepath.Join(dataDir, "runsc"), "list", "-quiet").Output(); strings.TrimSpace(string(b)) != "" {
		out = append(out, "runsc containers left: "+strings.Join(strings.Fields(string(b)), " "))
	}
	if procs := processesMentioning(dataDir); len(procs) > 0 {
		out = append(out, fmt.Sprintf("processes left: %v", procs))
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*" + testCgroup + "/*")
	for _, cg := range cgs {
		if fi, err := os.Stat(cg); err == nil && fi.IsDir() {
			out = append(out, "cgroup left: "+cg)
		}
	}
	return out
}

// sandboxLink matches the host end of a sandbox's veth in nft's listing.
var sandboxLink = regexp.MustCompile(`"` + testPrefix + `h[0-9]+"`)

// processesMentioning lists processes whose command line contains s (runsc
// sandboxes and gofers name their state root).
func processesMentioning(s string) []string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, s) {
			pid := strings.Split(f, "/")[2]
			if pid == fmt.Sprint(os.Getpid()) {
				continue
			}
			out = append(out, pid+": "+cmd)
		}
	}
	return out
}

// httpGet fetches url and returns status and body.
func httpGet(t testing.TB, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
