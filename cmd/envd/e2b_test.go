package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"nestbox.dev/internal/testenv"
)

// e2bPort is where E2B's SDK looks for envd in debug mode (hard-coded
// http://localhost:49983), so the suite cannot pick a free port.
const e2bPort = 49983

// The global env var passed to /init in secure mode; test/e2b/lib/harness.mjs
// expects exactly this name and value.
const (
	initEnvName  = "NESTBOX_INIT_VAR"
	initEnvValue = "set-by-init"
)

// The sandbox IDs the stub control plane knows; harness.mjs uses them too.
const (
	stubSandboxID     = "sbx1"
	stubBadTokenSbxID = "sbx-badtoken"
)

// TestE2BSDK runs E2B's unmodified JS SDK (test/e2b, e2b pinned to 2.51.0)
// against a freshly built `envd --dev`: once in the SDK's debug mode (no
// control plane, no access token) and once in secure mode (a stub control
// plane hands out the access token that /init gave envd). envd is restarted
// between the two so each starts from a clean state.
func TestE2BSDK(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCleanHome(t)
	node := testenv.RequireCommand(t, "node")
	suite, err := filepath.Abs(filepath.Join("..", "..", "test", "e2b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(suite, "node_modules", "e2b", "package.json")); err != nil {
		testenv.Missing(t, "the E2B SDK is not installed: run `npm ci` in test/e2b (or `make test-deps`)")
	}
	// Node 20 searches a directory argument for test files but Node 22
	// takes glob patterns instead, so list the files here.
	files, err := filepath.Glob(filepath.Join(suite, "envd", "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in %s/envd: %v", suite, err)
	}
	for i, f := range files {
		files[i], _ = filepath.Rel(suite, f)
	}
	ensureUser(t, "user")
	bin := buildEnvd(t)

	t.Run("debug", func(t *testing.T) {
		startEnvd(t, bin)
		runNodeSuite(t, node, suite, files, map[string]string{
			"NESTBOX_E2B_MODE": "debug",
			"E2B_DEBUG":        "true",
		})
	})

	t.Run("secure", func(t *testing.T) {
		base := startEnvd(t, bin)
		token := randomHex(t, 16)
		apiKey := "e2b_" + randomHex(t, 20)
		cp := newStubControlPlane(t, apiKey, token)
		postInit(t, base, token)
		runNodeSuite(t, node, suite, files, map[string]string{
			"NESTBOX_E2B_MODE":   "secure",
			"NESTBOX_ENVD_TOKEN": token,
			"E2B_API_URL":        cp.srv.URL,
			"E2B_SANDBOX_URL":    base,
			"E2B_API_KEY":        apiKey,
		})
		if n := cp.count("POST /v2/sandboxes"); n == 0 {
			t.Errorf("the SDK never created a sandbox through the stub control plane (requests: %v)", cp.summary())
		}
		t.Logf("stub control plane saw: %v", cp.summary())
	})
}

// ensureUser creates the local account E2B sandboxes run commands as.
func ensureUser(t *testing.T, name string) {
	t.Helper()
	if exec.Command("id", name).Run() == nil {
		return
	}
	out, err := exec.Command("useradd", "-m", "-s", "/bin/bash", name).CombinedOutput()
	if err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Logf("created local account %q", name)
}

// buildEnvd builds the static binary the way `make envd` does.
func buildEnvd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "envd")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/envd: %v\n%s", err, out)
	}
	return bin
}

// startEnvd starts `envd --dev --port 49983`, waits for GET /health to
// answer 204 and returns its base URL. It stops envd when the test ends and
// then prints envd's log if the test failed.
func startEnvd(t *testing.T, bin string) string {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e2bPort))
	if ln, err := net.Listen("tcp", fmt.Sprintf(":%d", e2bPort)); err != nil {
		t.Fatalf("port %d is in use (another envd, or `make run`?); the E2B SDK's debug mode needs it: %v", e2bPort, err)
	} else {
		ln.Close()
	}

	logPath := filepath.Join(t.TempDir(), "envd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--dev", "--port", strconv.Itoa(e2bPort), "--log-level", "debug")
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start envd: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("envd did not stop within 10 s of SIGTERM; killing it")
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			dumpLog(t, logPath, 400)
		}
	})

	base := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("envd exited before it was healthy: %v", waitErr)
		default:
		}
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return base
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET /health: %s, want 204", resp.Status)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("envd not healthy after 15 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// postInit does what the orchestrator does when a secured sandbox starts.
func postInit(t *testing.T, base, token string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"envVars":     map[string]string{initEnvName: initEnvValue},
		"accessToken": token,
		"defaultUser": "user",
		"timestamp":   time.Now().UTC().Format(time.RFC3339Nano),
	})
	resp, err := http.Post(base+"/init", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST /init: %v", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /init: %s %s, want 204", resp.Status, msg)
	}
}

// runNodeSuite runs the node:test files with the given extra environment,
// streams node's output into the test log and marks the test failed if node
// fails (without stopping it, so callers can still report what they saw).
func runNodeSuite(t *testing.T, node, dir string, files []string, env map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The files are independent (each works in its own directories), so
	// they run concurrently: the default is one fewer than the CPUs.
	args := append([]string{"--test", "--test-reporter=spec", "--test-timeout=60000",
		"--test-concurrency=" + strconv.Itoa(len(files))}, files...)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Env = nodeEnv(env)
	// The test runner forks one process per file: kill the whole group on timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	w := &lineLogger{t: t}
	cmd.Stdout = w
	cmd.Stderr = w
	start := time.Now()
	err := cmd.Run()
	w.flush()
	switch {
	case ctx.Err() != nil:
		t.Errorf("node --test did not finish within 3 minutes")
	case err != nil:
		t.Errorf("node --test (%s mode) failed after %s: %v", env["NESTBOX_E2B_MODE"], time.Since(start).Round(time.Millisecond), err)
	}
}

// nodeEnv is this process's environment without any E2B or suite settings
// it may have inherited, plus extra.
func nodeEnv(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "E2B_") || strings.HasPrefix(k, "NESTBOX_") || k == "NODE_OPTIONS" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "NO_COLOR=1")
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// lineLogger writes whole lines to the test log as they arrive.
type lineLogger struct {
	t   *testing.T
	mu  sync.Mutex
	buf []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.t.Log(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.t.Log(string(l.buf))
		l.buf = nil
	}
}

func dumpLog(t *testing.T, path string, maxLines int) {
	f, err := os.Open(path)
	if err != nil {
		t.Logf("envd log: %v", err)
		return
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > maxLines {
		t.Logf("envd log (last %d of %d lines):", maxLines, len(lines))
		lines = lines[len(lines)-maxLines:]
	} else {
		t.Logf("envd log:")
	}
	for _, l := range lines {
		t.Log("  envd| " + l)
	}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// stubControlPlane answers the few control-plane calls the SDK makes in the
// suite. Every sandbox it knows is the one envd; stubBadTokenSbxID hands out
// a wrong access token so the suite can check that envd rejects it.
type stubControlPlane struct {
	srv    *httptest.Server
	apiKey string
	tokens map[string]string // sandbox ID -> envdAccessToken

	mu   sync.Mutex
	seen map[string]int // "METHOD pattern" -> count
}

func newStubControlPlane(t *testing.T, apiKey, token string) *stubControlPlane {
	cp := &stubControlPlane{
		apiKey: apiKey,
		tokens: map[string]string{stubSandboxID: token, stubBadTokenSbxID: "not-the-" + token},
		seen:   map[string]int{},
	}
	mux := http.NewServeMux()
	create := func(w http.ResponseWriter, r *http.Request) {
		cp.writeSandbox(w, http.StatusCreated, stubSandboxID)
	}
	connectSbx := func(w http.ResponseWriter, r *http.Request) {
		cp.writeSandbox(w, http.StatusCreated, r.PathValue("id"))
	}
	mux.HandleFunc("POST /v2/sandboxes", create)
	mux.HandleFunc("POST /sandboxes", create)
	mux.HandleFunc("POST /v2/sandboxes/{id}/connect", connectSbx)
	mux.HandleFunc("POST /sandboxes/{id}/connect", connectSbx)
	mux.HandleFunc("DELETE /sandboxes/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !cp.known(w, r.PathValue("id")) {
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /sandboxes/{id}/timeout", func(w http.ResponseWriter, r *http.Request) {
		if !cp.known(w, r.PathValue("id")) {
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, http.StatusNotFound, "stub control plane: no route "+r.Method+" "+r.URL.Path)
	})
	cp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		cp.mu.Lock()
		cp.seen[pattern]++
		cp.mu.Unlock()
		if r.Header.Get("X-API-KEY") != cp.apiKey {
			writeAPIError(w, http.StatusUnauthorized, "invalid API key")
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(cp.srv.Close)
	return cp
}

func (cp *stubControlPlane) known(w http.ResponseWriter, id string) bool {
	if _, ok := cp.tokens[id]; ok {
		return true
	}
	writeAPIError(w, http.StatusNotFound, fmt.Sprintf("sandbox %q not found", id))
	return false
}

func (cp *stubControlPlane) writeSandbox(w http.ResponseWriter, status int, id string) {
	if !cp.known(w, id) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"sandboxID":       id,
		"templateID":      "base",
		"clientID":        "x",
		"envdVersion":     "0.6.13",
		"envdAccessToken": cp.tokens[id],
	})
}

func writeAPIError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": status, "message": msg})
}

func (cp *stubControlPlane) count(pattern string) int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.seen[pattern]
}

func (cp *stubControlPlane) summary() string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	keys := make([]string, 0, len(cp.seen))
	for k := range cp.seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, cp.seen[k])
	}
	return strings.Join(parts, ", ")
}
