package envdclient

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/user"
	"strings"
	"testing"
	"time"

	"nestbox.dev/internal/envd"
	"nestbox.dev/internal/envd/settings"
	"nestbox.dev/internal/testenv"
)

// testCapsule is the capsule ID under which the fake agent proxy serves the
// test's envd; any other ID is a capsule that is gone.
const testCapsule = "cap-test"

// testEnv is a real envd in dev mode, running as the current user, behind
// an httptest server that plays the host agent's reverse proxy.
type testEnv struct {
	envd    *envd.Server
	proxy   *httptest.Server
	workdir string
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	testenv.RequireCleanHome(t)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	workdir := t.TempDir()
	s, err := envd.New(envd.Config{Dev: true, DefaultUser: me.Username, DefaultWorkdir: workdir})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	proxy := httptest.NewServer(agentProxy(t, "http://"+ln.Addr().String()))
	t.Cleanup(func() {
		proxy.Close()
		cancel() // Serve shuts down and closes envd's services
		if err := <-served; err != nil {
			t.Errorf("envd serve: %v", err)
		}
	})
	return &testEnv{envd: s, proxy: proxy, workdir: workdir}
}

// baseURL is envd's URL through the proxy for capsule.
func (e *testEnv) baseURL(capsule string) string {
	return e.proxy.URL + "/proxy/" + capsule + "/49983"
}

// client returns a Client of the test capsule's envd.
func (e *testEnv) client(token string) *Client {
	return New(Config{BaseURL: e.baseURL(testCapsule), AccessToken: token})
}

// setToken makes envd require tok, as /init would.
func (e *testEnv) setToken(tok string) {
	e.envd.Settings().Apply(settings.Update{AccessToken: &tok})
}

// agentProxy forwards /proxy/cap-test/49983/... to envd and answers any
// other capsule as the agent does for one that is gone: 502 with a JSON
// body.
func agentProxy(t *testing.T, target string) http.Handler {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		FlushInterval: -1,
	}
	prefix := "/proxy/" + testCapsule + "/49983"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			json.NewEncoder(w).Encode(map[string]any{"code": 502, "message": "The sandbox was not found", "sandboxId": "gone"})
			return
		}
		// As the agent does: the answer may start before the whole body
		// is read (golang.org/issue/40747).
		http.NewResponseController(w).EnableFullDuplex()
		out := r.Clone(r.Context())
		out.URL.Path, out.URL.RawPath = rest, ""
		rp.ServeHTTP(w, out)
	})
}

// testCtx bounds a test's calls; it is generous, to tell stuck from slow.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// requireUser skips (fails in CI) unless envd can act as the account
// "user": the tests run as root and the account exists.
func requireUser(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	if _, err := user.Lookup("user"); err != nil {
		testenv.Missing(t, `the account "user"`)
	}
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
