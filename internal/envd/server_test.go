package envd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/user"
	"runtime"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/filesystempb"
	"nestbox.dev/internal/proto/filesystempb/filesystempbconnect"
	"nestbox.dev/internal/proto/processpb"
	"nestbox.dev/internal/proto/processpb/processpbconnect"
	"nestbox.dev/internal/testenv"
)

// newTestServer runs envd in dev mode as the current user behind httptest.
func newTestServer(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Dev: true, DefaultUser: me.Username, DefaultWorkdir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Config = s.http
	ts.Config.Handler = s.Handler()
	ts.Start()
	t.Cleanup(func() {
		ts.Close()
		s.fs.Close()
		s.proc.Close()
	})
	return s, ts
}

func do(t *testing.T, method, url string, body string, hdr map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestHealthAndUnknownPath(t *testing.T) {
	_, ts := newTestServer(t)
	if code, _ := do(t, "GET", ts.URL+"/health", "", nil); code != http.StatusNoContent {
		t.Fatalf("GET /health: got %d, want 204", code)
	}
	code, body := do(t, "GET", ts.URL+"/nope", "", nil)
	if code != http.StatusNotFound {
		t.Fatalf("GET /nope: got %d, want 404", code)
	}
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code != 404 || e.Message == "" {
		t.Fatalf("GET /nope: body %q is not a JSON error", body)
	}
}

func TestInitAppliesEverything(t *testing.T) {
	s, ts := newTestServer(t)
	workdir := t.TempDir()
	me, _ := user.Current()
	body := `{"envVars":{"FOO":"bar","X":"1"},"accessToken":"tok","defaultUser":"` + me.Username +
		`","defaultWorkdir":"` + workdir + `","timestamp":"2026-01-02T03:04:05Z","hyperloopIP":"ignored"}`
	if code, b := do(t, "POST", ts.URL+"/init", body, nil); code != http.StatusNoContent {
		t.Fatalf("POST /init: got %d %s", code, b)
	}
	if got := s.settings.AccessToken(); got != "tok" {
		t.Errorf("access token: got %q, want tok", got)
	}
	if got := s.settings.DefaultWorkdir(); got != workdir {
		t.Errorf("workdir: got %q, want %q", got, workdir)
	}
	// /envs now needs the token.
	if code, _ := do(t, "GET", ts.URL+"/envs", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("GET /envs without token: got %d, want 401", code)
	}
	code, b := do(t, "GET", ts.URL+"/envs", "", map[string]string{"X-Access-Token": "tok"})
	if code != 200 || !strings.Contains(string(b), `"FOO":"bar"`) {
		t.Fatalf("GET /envs: got %d %s", code, b)
	}
	// An older init is ignored, a newer one applies; both need the token now.
	if code, _ := do(t, "POST", ts.URL+"/init", `{"envVars":{"FOO":"old"}}`, nil); code != http.StatusUnauthorized {
		t.Fatalf("POST /init without the token after it was set: got %d, want 401", code)
	}
	hdr := map[string]string{"X-Access-Token": "tok"}
	do(t, "POST", ts.URL+"/init", `{"envVars":{"FOO":"old"},"timestamp":"2025-01-01T00:00:00Z"}`, hdr)
	if got := s.settings.EnvVars()["FOO"]; got != "bar" {
		t.Errorf("stale init applied: FOO=%q", got)
	}
	do(t, "POST", ts.URL+"/init", `{"envVars":{"FOO":"new"},"timestamp":"2027-01-01T00:00:00Z"}`, hdr)
	if got := s.settings.EnvVars()["FOO"]; got != "new" {
		t.Errorf("newer init not applied: FOO=%q", got)
	}
	// The env vars reach processes.
	out := runEcho(t, ts.URL, "tok", "echo $FOO $X")
	if out != "new 1\n" {
		t.Errorf("process env: got %q, want %q", out, "new 1\n")
	}
}

func TestInitRejectsBadInput(t *testing.T) {
	_, ts := newTestServer(t)
	for _, tc := range []struct{ name, body string }{
		{"not json", `{"envVars":`},
		{"wrong type", `{"envVars":["a"]}`},
		{"bad env name", `{"envVars":{"A=B":"1"}}`},
		{"unknown user", `{"defaultUser":"no-such-user-xyz"}`},
		{"relative workdir", `{"defaultWorkdir":"rel/dir"}`},
		{"bad timestamp", `{"timestamp":"yesterday"}`},
		{"huge", `{"envVars":{"A":"` + strings.Repeat("x", 2<<20) + `"}}`},
	} {
		code, b := do(t, "POST", ts.URL+"/init", tc.body, nil)
		if code < 400 || code >= 500 || !bytes.Contains(b, []byte(`"message"`)) {
			t.Errorf("init %s: got %d %q, want a 4xx JSON error", tc.name, code, b)
		}
	}
}

func runEcho(t *testing.T, base, token, script string) string {
	t.Helper()
	c := processpbconnect.NewProcessClient(http.DefaultClient, base, connect.WithProtoJSON())
	req := connect.NewRequest(&processpb.StartRequest{Process: &processpb.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-c", script}}})
	if token != "" {
		req.Header().Set("X-Access-Token", token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for st.Receive() {
		if d := st.Msg().GetEvent().GetData(); d != nil {
			out.Write(d.GetStdout())
		}
	}
	if err := st.Err(); err != nil {
		t.Fatalf("start %q: %v", script, err)
	}
	return out.String()
}

func TestRPCsRequireToken(t *testing.T) {
	s, ts := newTestServer(t)
	tok := "secret"
	s.settings.Apply(settingsUpdateToken(tok))
	pc := processpbconnect.NewProcessClient(http.DefaultClient, ts.URL)
	_, err := pc.List(context.Background(), connect.NewRequest(&processpb.ListRequest{}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("List without token: got %v, want unauthenticated", err)
	}
	fc := filesystempbconnect.NewFilesystemClient(http.DefaultClient, ts.URL, connect.WithProtoJSON())
	st, err := fc.WatchDir(context.Background(), connect.NewRequest(&filesystempb.WatchDirRequest{Path: "/"}))
	if err == nil {
		st.Receive()
		err = st.Err()
		st.Close()
	}
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("WatchDir without token: got %v, want unauthenticated", err)
	}
	req := connect.NewRequest(&processpb.ListRequest{})
	req.Header().Set("X-Access-Token", tok)
	if _, err := pc.List(context.Background(), req); err != nil {
		t.Fatalf("List with token: %v", err)
	}
	for _, p := range []string{"/metrics", "/envs"} {
		if code, _ := do(t, "GET", ts.URL+p, "", nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without token: got %d, want 401", p, code)
		}
	}
	if code, _ := do(t, "GET", ts.URL+"/files?path=/etc/hostname", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /files without token or signature: got %d, want 401", code)
	}
	if code, _ := do(t, "GET", ts.URL+"/health", "", nil); code != http.StatusNoContent {
		t.Errorf("GET /health must stay open: got %d", code)
	}
}

func TestMetrics(t *testing.T) {
	_, ts := newTestServer(t)
	code, b := do(t, "GET", ts.URL+"/metrics", "", nil)
	if code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, b)
	}
	var m metrics
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.CPUCount != runtime.NumCPU() || m.MemTotal == 0 || m.MemUsed == 0 || m.MemUsed > m.MemTotal ||
		m.DiskTotal == 0 || m.DiskUsed > m.DiskTotal || m.CPUUsedPct < 0 || m.CPUUsedPct > 100 ||
		m.MemTotalMiB != m.MemTotal>>20 || time.Since(time.Unix(m.Timestamp, 0)) > time.Minute {
		t.Fatalf("implausible metrics: %+v", m)
	}
}

func TestSnapshotPrepareAndRecover(t *testing.T) {
	s, ts := newTestServer(t)
	before := runtime.GOMAXPROCS(0)
	if before == 1 {
		testenv.Missing(t, "needs GOMAXPROCS > 1 to observe the change")
	}
	for range 2 { // idempotent
		if code, b := do(t, "POST", ts.URL+"/snapshot/prepare", "", nil); code != http.StatusNoContent {
			t.Fatalf("prepare: %d %s", code, b)
		}
	}
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("GOMAXPROCS after prepare: got %d, want 1", got)
	}
	if !s.snap.prepared {
		t.Fatal("not marked prepared")
	}
	// Readiness probes do not undo the preparation: the post-restore
	// /init does, with the defaults in the same call.
	if code, _ := do(t, "GET", ts.URL+"/health", "", nil); code != http.StatusNoContent {
		t.Fatalf("health after restore: %d", code)
	}
	if !s.snap.prepared {
		t.Fatal("health undid the preparation")
	}
	if code, b := do(t, "POST", ts.URL+"/init", `{"defaultWorkdir":"/tmp"}`, nil); code != http.StatusNoContent {
		t.Fatalf("post-restore init: %d %s", code, b)
	}
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Fatalf("GOMAXPROCS after post-restore init: got %d, want %d", got, before)
	}
	if s.snap.prepared {
		t.Fatal("still prepared after init")
	}
	// Keep-alives work again: the server serves a normal exchange.
	if out := runEcho(t, ts.URL, "", "echo ok"); out != "ok\n" {
		t.Fatalf("exec after recover: %q", out)
	}
}
