package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nestbox.dev"
	"nestbox.dev/internal/apikey"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/events/memory"
	"nestbox.dev/internal/fleet"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/lifecycle/fakehost"
	"nestbox.dev/internal/server"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlite"
)

// hostToken and hostToken2 are the host h1's tokens (server.Config.HostTokens).
const (
	hostToken  = "host-secret"
	hostToken2 = "host-secret-2"
)

// env is a control plane over a fake host agent, with two teams, and a
// fleet registry over its store. Its platform team is team_admin, which
// TestAuthorizationMatrix makes.
type env struct {
	url        string
	keyA, keyB string
	agent      *fakehost.Agent
	store      store.Store
	fleet      *fleet.Registry
	ready      chan struct{}
	srv        *server.Server
}

// envOption changes the control plane newEnv builds.
type envOption func(*envConfig)

type envConfig struct {
	proxyURL string // the fake host's proxy URL
	server   func(*server.Config)
	// wrap, if set, wraps the store the lifecycle service uses.
	wrap func(store.Store) store.Store
	// metrics, if set, is the registry of the lifecycle's and the
	// server's metrics.
	metrics *prometheus.Registry
}

// withMetrics registers the lifecycle's and the server's metrics on reg.
func withMetrics(reg *prometheus.Registry) envOption {
	return func(c *envConfig) { c.metrics = reg }
}

// withStore wraps the store the lifecycle service uses.
func withStore(wrap func(store.Store) store.Store) envOption {
	return func(c *envConfig) { c.wrap = wrap }
}

// withAgentProxy points the fake host's proxy URL at url.
func withAgentProxy(url string) envOption { return func(c *envConfig) { c.proxyURL = url } }

// withConfig edits the server's Config.
func withConfig(f func(*server.Config)) envOption { return func(c *envConfig) { c.server = f } }

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ec := envConfig{proxyURL: "http://127.0.0.1:1", server: func(*server.Config) {}}
	for _, o := range opts {
		o(&ec)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "nestbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{store: st, agent: fakehost.New()}
	for _, tm := range []struct {
		id  string
		key *string
	}{{"team_a", &e.keyA}, {"team_b", &e.keyB}} {
		now := time.Now().UTC()
		if err := st.CreateUser(ctx, store.User{ID: "u_" + tm.id, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateTeam(ctx, store.Team{ID: tm.id, Name: tm.id, CreatedAt: now}, "u_"+tm.id); err != nil {
			t.Fatal(err)
		}
		key, hash := apikey.New()
		if err := st.CreateAPIKey(ctx, store.APIKey{ID: "key_" + tm.id, TeamID: tm.id, Name: "test", Prefix: apikey.DisplayPrefix(key), Hash: hash, CreatedBy: "u_" + tm.id, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		*tm.key = key
	}
	var lst store.Store = st
	if ec.wrap != nil {
		lst = ec.wrap(st)
	}
	life, err := lifecycle.New(lifecycle.Config{Store: lst, Events: memory.New(), Hosts: fakehost.Hosts{Host: lifecycle.Host{ID: "h1", Agent: e.agent, ProxyURL: ec.proxyURL}}, Metrics: registerer(ec.metrics)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { life.Close(10 * time.Second) })
	e.ready = make(chan struct{})
	e.fleet = fleet.New(fleet.Config{Store: st, Connect: func(id, url, token string) lifecycle.Host {
		return lifecycle.Host{ID: id, Agent: fakehost.New(), ProxyURL: url}
	}})
	cfg := server.Config{Lifecycle: life, Store: st, HostTokens: []string{hostToken, hostToken2}, HostID: "h1", Ready: e.ready, Fleet: e.fleet, PlatformTeamID: "team_admin", Metrics: registerer(ec.metrics)}
	ec.server(&cfg)
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	close(e.ready)
	e.srv = srv
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	e.url = ts.URL
	return e
}

// do sends a request with key (none if empty) and returns the status and
// the body.
func (e *env) do(t *testing.T, method, path, key string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// errorCode decodes an error body; it fails the test if the body is not
// one.
func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var eb nestbox.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
		t.Fatalf("body %q is not an error body", body)
	}
	return eb.Error.Code
}

func (e *env) create(t *testing.T, key string, req nestbox.CreateCapsuleRequest) nestbox.Capsule {
	t.Helper()
	b, _ := json.Marshal(req)
	code, body := e.do(t, "POST", "/v1/capsules", key, bytes.NewReader(b))
	if code != http.StatusAccepted {
		t.Fatalf("create: %d %s", code, body)
	}
	var c nestbox.Capsule
	json.Unmarshal(body, &c)
	return c
}

func TestCapsuleLifecycleOverHTTP(t *testing.T) {
	e := newEnv(t)
	c := e.create(t, e.keyA, nestbox.CreateCapsuleRequest{Metadata: map[string]string{"app": "x"}})
	if c.Status != nestbox.StatusStarting {
		t.Fatalf("create answered status %s, want starting", c.Status)
	}
	code, body := e.do(t, "GET", "/v1/capsules/"+c.ID+"?wait=running&timeout=20s", e.keyA, nil)
	var got nestbox.Capsule
	if json.Unmarshal(body, &got); code != 200 || got.Status != nestbox.StatusRunning {
		t.Fatalf("wait=running: %d %s", code, body)
	}
	code, body = e.do(t, "GET", "/v1/capsules?status=running&metadata.app=x", e.keyA, nil)
	var list nestbox.CapsuleList
	if json.Unmarshal(body, &list); code != 200 || len(list.Capsules) != 1 || list.Capsules[0].ID != c.ID {
		t.Fatalf("filtered list: %d %s", code, body)
	}
	code, body = e.do(t, "GET", "/v1/capsules?metadata.app=y", e.keyA, nil)
	if json.Unmarshal(body, &list); code != 200 || len(list.Capsules) != 0 {
		t.Fatalf("list with a metadata filter that matches nothing: %d %s", code, body)
	}
	code, body = e.do(t, "DELETE", "/v1/capsules/"+c.ID, e.keyA, nil)
	if json.Unmarshal(body, &got); code != http.StatusAccepted || got.Status != nestbox.StatusStopping {
		t.Fatalf("delete: %d %s", code, body)
	}
	code, body = e.do(t, "GET", "/v1/capsules/"+c.ID+"?wait=stopped", e.keyA, nil)
	if json.Unmarshal(body, &got); code != 200 || got.Status != nestbox.StatusStopped {
		t.Fatalf("wait=stopped: %d %s", code, body)
	}
	code, body = e.do(t, "GET", "/v1/capsules/"+c.ID+"/events", e.keyA, nil)
	var evs nestbox.CapsuleEventList
	if json.Unmarshal(body, &evs); code != 200 || len(evs.Events) != 4 {
		t.Fatalf("events: %d %s", code, body)
	}
	if e.agent.Count() != 0 {
		t.Fatal("the sandbox was not destroyed")
	}
}

func TestPagination(t *testing.T) {
	e := newEnv(t)
	want := map[string]bool{}
	for range 7 {
		want[e.create(t, e.keyA, nestbox.CreateCapsuleRequest{}).ID] = true
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		code, body := e.do(t, "GET", "/v1/capsules?limit=3&cursor="+cursor, e.keyA, nil)
		var list nestbox.CapsuleList
		if json.Unmarshal(body, &list); code != 200 {
			t.Fatalf("page: %d %s", code, body)
		}
		for _, c := range list.Capsules {
			if seen[c.ID] {
				t.Fatalf("capsule %s on two pages", c.ID)
			}
			seen[c.ID] = true
		}
		if cursor = list.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("pages held %d capsules, want %d", len(seen), len(want))
	}
	// Team B sees none of them.
	code, body := e.do(t, "GET", "/v1/capsules", e.keyB, nil)
	var list nestbox.CapsuleList
	if json.Unmarshal(body, &list); code != 200 || len(list.Capsules) != 0 {
		t.Fatalf("team B's list: %d %s", code, body)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	c := e.create(t, e.keyA, nestbox.CreateCapsuleRequest{})
	unknown, _ := apikey.New()
	for _, tc := range []struct {
		name, key string
		want      int
	}{
		{"no key", "", 401},
		{"malformed key", "hello", 401},
		{"unknown key", unknown, 401},
		{"E2B form of a valid key", apikey.E2BForm(e.keyA), 200},
		{"other team's key", e.keyB, 404},
	} {
		code, body := e.do(t, "GET", "/v1/capsules/"+c.ID, tc.key, nil)
		if code != tc.want {
			t.Errorf("%s: got %d %s, want %d", tc.name, code, body, tc.want)
		}
		if code != 200 {
			errorCode(t, body)
		}
	}
	// Another team cannot destroy, time out, or reach the capsule.
	for _, r := range []struct{ method, path, body string }{
		{"DELETE", "/v1/capsules/" + c.ID, ""},
		{"POST", "/v1/capsules/" + c.ID + "/timeout", `{"timeout_seconds":60}`},
		{"POST", "/v1/capsules/" + c.ID + "/exec", `{"cmd":["true"]}`},
		{"GET", "/v1/capsules/" + c.ID + "/files?path=/etc/hostname", ""},
		{"GET", "/proxy/" + c.ID + "/8080/", ""},
	} {
		code, body := e.do(t, r.method, r.path, e.keyB, strings.NewReader(r.body))
		if code != 404 || errorCode(t, body) != "not_found" {
			t.Errorf("team B %s %s: %d %s, want 404 not_found", r.method, r.path, code, body)
		}
	}
	// A revoked key stops working.
	code, body := e.do(t, "POST", "/v1/keys", e.keyA, strings.NewReader(`{"name":"temp"}`))
	var created nestbox.APIKeyCreated
	if json.Unmarshal(body, &created); code != 201 || !strings.HasPrefix(created.Key, "nbx_") {
		t.Fatalf("create key: %d %s", code, body)
	}
	if code, _ := e.do(t, "GET", "/v1/keys", created.Key, nil); code != 200 {
		t.Fatalf("the new key does not work: %d", code)
	}
	if code, body := e.do(t, "DELETE", "/v1/keys/"+created.ID, e.keyB, nil); code != 404 {
		t.Fatalf("team B revoked team A's key: %d %s", code, body)
	}
	if code, _ := e.do(t, "DELETE", "/v1/keys/"+created.ID, e.keyA, nil); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	if code, _ := e.do(t, "GET", "/v1/keys", created.Key, nil); code != 401 {
		t.Fatalf("a revoked key still works: %d", code)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	c := e.create(t, e.keyA, nestbox.CreateCapsuleRequest{})
	huge := `{"metadata":{"k":"` + strings.Repeat("x", 2<<20) + `"}}`
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
		code                     string
	}{
		{"malformed JSON", "POST", "/v1/capsules", `{"template":`, 400, "invalid_argument"},
		{"not JSON", "POST", "/v1/capsules", `template=base`, 400, "invalid_argument"},
		{"wrong type", "POST", "/v1/capsules", `{"vcpus":"two"}`, 400, "invalid_argument"},
		{"unknown field", "POST", "/v1/capsules", `{"tempalte":"base"}`, 400, "invalid_argument"},
		{"two values", "POST", "/v1/capsules", `{} {}`, 400, "invalid_argument"},
		{"huge body", "POST", "/v1/capsules", huge, 413, "too_large"},
		{"invalid value", "POST", "/v1/capsules", `{"memory_mb":1}`, 400, "invalid_argument"},
		{"bad ID", "GET", "/v1/capsules/../../etc", "", 404, "not_found"},
		{"short ID", "GET", "/v1/capsules/abc", "", 404, "not_found"},
		{"unknown ID", "GET", "/v1/capsules/aaaaaaaaaaaaaaaaaaaa", "", 404, "not_found"},
		{"bad wait", "GET", "/v1/capsules/" + c.ID + "?wait=done", "", 400, "invalid_argument"},
		{"bad timeout", "GET", "/v1/capsules/" + c.ID + "?wait=running&timeout=forever", "", 400, "invalid_argument"},
		{"bad status filter", "GET", "/v1/capsules?status=sleeping", "", 400, "invalid_argument"},
		{"bad limit", "GET", "/v1/capsules?limit=-1", "", 400, "invalid_argument"},
		{"bad cursor", "GET", "/v1/capsules?cursor=not-a-cursor", "", 400, "invalid_argument"},
		{"unknown parameter", "GET", "/v1/capsules?colour=red", "", 400, "invalid_argument"},
		{"missing timeout body", "POST", "/v1/capsules/" + c.ID + "/timeout", "", 400, "invalid_argument"},
		{"exec without cmd", "POST", "/v1/capsules/" + c.ID + "/exec", `{"cmd":[]}`, 400, "invalid_argument"},
		{"relative file path", "GET", "/v1/capsules/" + c.ID + "/files?path=etc/passwd", "", 400, "invalid_argument"},
		{"bad pid", "POST", "/v1/capsules/" + c.ID + "/processes/x/signal", `{"signal":"SIGKILL"}`, 400, "invalid_argument"},
		{"bad signal", "POST", "/v1/capsules/" + c.ID + "/processes/5/signal", `{"signal":"SIGHUP"}`, 400, "invalid_argument"},
		{"bad terminal size", "GET", "/v1/capsules/" + c.ID + "/pty?cols=0", "", 400, "invalid_argument"},
		{"empty key name", "POST", "/v1/keys", `{"name":" "}`, 400, "invalid_argument"},
		{"bad proxy port", "GET", "/proxy/" + c.ID + "/99999/", "", 400, "invalid_argument"},
		{"unknown route", "GET", "/v1/nothing", "", 404, "not_found"},
	} {
		code, body := e.do(t, tc.method, tc.path, e.keyA, strings.NewReader(tc.body))
		if code != tc.want {
			t.Errorf("%s: got %d %s, want %d", tc.name, code, body, tc.want)
			continue
		}
		if got := errorCode(t, body); got != tc.code {
			t.Errorf("%s: code %q, want %q", tc.name, got, tc.code)
		}
	}
	if n := e.agent.Creates(); n > 1 {
		t.Fatalf("%d creates reached the host; only the valid one should have", n)
	}
}

func TestHostEvents(t *testing.T) {
	e := newEnv(t)
	c := e.create(t, e.keyA, nestbox.CreateCapsuleRequest{})
	e.do(t, "GET", "/v1/capsules/"+c.ID+"?wait=running", e.keyA, nil)
	post := func(token, body string) int {
		req, _ := http.NewRequest("POST", e.url+"/v1/hosts/sandbox-events", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ev := `{"sandbox_id":"` + c.ID + `","type":"timed_out","at":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}`
	if code := post("", ev); code != 401 {
		t.Fatalf("event without the host token: %d", code)
	}
	if code := post(e.keyA, ev); code != 401 {
		t.Fatalf("event with an API key instead of the host token: %d", code)
	}
	if code := post(hostToken+"x", ev); code != 401 {
		t.Fatalf("event with a wrong host token: %d", code)
	}
	// Each of the host's tokens authenticates (a malformed event is 400,
	// not 401).
	for _, tok := range []string{hostToken, hostToken2} {
		if code := post(tok, `{"sandbox_id":"x","type":"boom"}`); code != 400 {
			t.Fatalf("malformed event with host token %q: %d", tok, code)
		}
	}
	// The token is host h1's: it may not speak for another host, nor
	// about a capsule on another host, and such events change nothing.
	other := c
	other.ID, other.HostID, other.Status = capsulespec.NewID(), "h2", nestbox.StatusRunning
	if err := e.store.CreateCapsule(context.Background(), store.Capsule{Capsule: other, UpdatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	at := `","at":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}`
	for _, tc := range []struct{ name, body string }{
		{"another host's id", `{"host_id":"h2","sandbox_id":"` + c.ID + `","type":"crashed` + at},
		{"a capsule on another host", `{"sandbox_id":"` + other.ID + `","type":"crashed` + at},
		{"a capsule on another host, own host id", `{"host_id":"h1","sandbox_id":"` + other.ID + `","type":"crashed` + at},
	} {
		if code := post(hostToken, tc.body); code != 403 {
			t.Errorf("event naming %s: %d, want 403", tc.name, code)
		}
	}
	for _, id := range []string{c.ID, other.ID} {
		if got, err := e.store.GetCapsule(context.Background(), id); err != nil || got.Status != nestbox.StatusRunning {
			t.Errorf("capsule %s after refused events: %s, %v; want running", id, got.Status, err)
		}
	}
	if code := post(hostToken, ev); code != 204 {
		t.Fatalf("event: %d", code)
	}
	code, body := e.do(t, "GET", "/v1/capsules/"+c.ID, e.keyA, nil)
	var got nestbox.Capsule
	if json.Unmarshal(body, &got); code != 200 || got.Status != nestbox.StatusStopped {
		t.Fatalf("after a timed_out event: %d %s", code, body)
	}
}

func TestNotReady(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "nestbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	life, _ := lifecycle.New(lifecycle.Config{Store: st, Events: memory.New(), Hosts: fakehost.Hosts{Host: lifecycle.Host{ID: "h1", Agent: fakehost.New()}}})
	defer life.Close(time.Second)
	ready := make(chan struct{})
	srv, _ := server.New(server.Config{Lifecycle: life, Store: st, Ready: ready})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("/health while starting: %d, want 503 with Retry-After", resp.StatusCode)
	}
	close(ready)
	resp, err = http.Get(ts.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/health when ready: %d", resp.StatusCode)
	}
}
