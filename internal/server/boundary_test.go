package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"nestbox.dev"
	"nestbox.dev/internal/apikey"
	"nestbox.dev/internal/envd/auth"
	"nestbox.dev/internal/server"
	"nestbox.dev/internal/store"
)

// running creates a capsule of key's team and waits until it runs.
func (e *env) running(t *testing.T, key string, req nestbox.CreateCapsuleRequest) nestbox.Capsule {
	t.Helper()
	c := e.create(t, key, req)
	code, body := e.do(t, "GET", "/v1/capsules/"+c.ID+"?wait=running&timeout=20s", key, nil)
	if code != 200 {
		t.Fatalf("wait for %s to run: %d %s", c.ID, code, body)
	}
	json.Unmarshal(body, &c)
	if c.Status != nestbox.StatusRunning {
		t.Fatalf("capsule %s is %s, want running", c.ID, c.Status)
	}
	return c
}

// send sends req and returns the status and body.
func send(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// TestProxyStripsCredentials sends a request to a capsule by every path
// that reaches one (the API's /proxy path, E2B's routing headers, a host
// name, a signed /files URL), each with every form of the API key the
// control plane accepts, and checks what the capsule's server received:
// no key in any form, no routing or traffic headers of the platform, none
// of the platform's cookies; the capsule's own cookies, envd's access
// token and envd's Basic user (without its password) do arrive.
func TestProxyStripsCredentials(t *testing.T) {
	agent := newAgentProxy(t)
	e := newEnv(t, withAgentProxy(agent.url))
	c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
	rec, err := e.store.GetCapsule(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	digits := strings.TrimPrefix(e.keyA, apikey.Prefix)
	e2bKey := apikey.E2BForm(e.keyA)
	sig := auth.Sign("/f", auth.OpRead, "", rec.AccessToken, 0)

	type request struct {
		name   string
		path   string // on the control plane
		host   string // "" for the server's own
		header map[string]string
		port   string // where it must arrive
		// wantAuth is the Authorization the capsule must see ("" none).
		wantAuth string
	}
	routed := map[string]string{"E2b-Sandbox-Id": c.ID, "E2b-Sandbox-Port": "8080"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	var reqs []request
	for _, cred := range []struct {
		name   string
		header map[string]string
	}{
		{"X-API-Key", map[string]string{"X-API-Key": e.keyA}},
		{"X-API-Key (E2B form)", map[string]string{"X-API-Key": e2bKey}},
		{"Bearer", map[string]string{"Authorization": "Bearer " + e.keyA}},
		{"Bearer (E2B form)", map[string]string{"Authorization": "Bearer " + e2bKey}},
		{"Basic with the key as password", map[string]string{"X-API-Key": e.keyA, "Authorization": basic("user", e.keyA)}},
		{"Basic with the key as user", map[string]string{"X-API-Key": e.keyA, "Authorization": basic(e.keyA, "")}},
	} {
		wantAuth := ""
		if strings.HasPrefix(cred.name, "Basic with the key as password") {
			wantAuth = basic("user", "")
		}
		cookie := "nestbox_session=" + digits + "; app=1"
		reqs = append(reqs,
			request{"proxy path, " + cred.name, "/proxy/" + c.ID + "/8080/x", "", with(cred.header, "Cookie", cookie), "8080", wantAuth},
			request{"routing headers, " + cred.name, "/x", "", with(with(routed, "E2b-Traffic-Access-Token", digits, "Cookie", cookie), flatten(cred.header)...), "8080", wantAuth},
			request{"envd by routing headers, " + cred.name, "/health", "", with(cred.header, "E2b-Sandbox-Id", c.ID, "X-Access-Token", rec.AccessToken), "49983", wantAuth},
			request{"host name, " + cred.name, "/x", "8080-" + c.ID + ".localhost", with(cred.header, "Cookie", cookie), "8080", wantAuth},
			request{"signed URL, " + cred.name, "/files?path=/f&signature=" + url.QueryEscape(sig), "", cred.header, "49983", wantAuth},
		)
	}
	for _, rq := range reqs {
		agent.requests()
		req, _ := http.NewRequest("GET", e.url+rq.path, nil)
		if rq.host != "" {
			req.Host = rq.host
		}
		for k, v := range rq.header {
			req.Header.Set(k, v)
		}
		if code, body := send(t, req); code != 200 {
			t.Errorf("%s: %d %s, want 200 from the capsule", rq.name, code, body)
			continue
		}
		seen := agent.requests()
		if len(seen) != 1 || seen[0].Capsule != c.ID || seen[0].Port != rq.port {
			t.Errorf("%s: the capsule saw %+v, want one request on port %s", rq.name, seen, rq.port)
			continue
		}
		h := seen[0].Header
		for name, vals := range h {
			for _, v := range vals {
				if strings.Contains(strings.ToLower(v), digits) || strings.Contains(decodeBasic(v), digits) {
					t.Errorf("%s: the capsule received the API key in %s: %q", rq.name, name, v)
				}
			}
		}
		for _, name := range []string{"X-Api-Key", "E2b-Sandbox-Id", "E2b-Sandbox-Port", "E2b-Traffic-Access-Token", "Proxy-Authorization"} {
			if v, ok := h[name]; ok {
				t.Errorf("%s: the capsule received %s: %q", rq.name, name, v)
			}
		}
		if got := h.Get("Authorization"); got != rq.wantAuth {
			t.Errorf("%s: the capsule received Authorization %q, want %q", rq.name, got, rq.wantAuth)
		}
		if ck, ok := rq.header["Cookie"]; ok && ck != "" && h.Get("Cookie") != "app=1" {
			t.Errorf("%s: the capsule received Cookie %q, want only its own (app=1)", rq.name, h.Get("Cookie"))
		}
		if rq.header["X-Access-Token"] != "" && h.Get("X-Access-Token") != rec.AccessToken {
			t.Errorf("%s: envd's X-Access-Token did not arrive", rq.name)
		}
	}
}

// flatten turns a header map into key, value, ...
func flatten(m map[string]string) []string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k, v)
	}
	return kv
}

// decodeBasic returns the credentials of a Basic Authorization value, or "".
func decodeBasic(v string) string {
	cred, ok := strings.CutPrefix(v, "Basic ")
	if !ok {
		return ""
	}
	b, _ := base64.StdEncoding.DecodeString(cred)
	return string(b)
}

// TestWebSocketOrigin: a browser page of another origin cannot open the
// API's exec and PTY streams (403); the API's own origin and clients that
// send no Origin can.
func TestWebSocketOrigin(t *testing.T) {
	const public = "https://nestbox.example.com"
	for _, tc := range []struct {
		name      string
		publicURL string
		origin    string // "{self}" is the test server's own origin
		want      int
	}{
		{"no Origin", "", "", http.StatusSwitchingProtocols},
		{"same origin", "", "{self}", http.StatusSwitchingProtocols},
		{"another origin", "", "http://evil.example", http.StatusForbidden},
		{"a lookalike", "", "http://127.0.0.1.evil.example", http.StatusForbidden},
		{"null", "", "null", http.StatusForbidden},
		{"the public URL's origin", public, public, http.StatusSwitchingProtocols},
		{"the public URL's host over http", public, "http://nestbox.example.com", http.StatusForbidden},
		{"the request's host when a public URL is set", public, "{self}", http.StatusForbidden},
		{"no Origin with a public URL", public, "", http.StatusSwitchingProtocols},
	} {
		t.Run(tc.name, func(t *testing.T) {
			agent := newAgentProxy(t)
			e := newEnv(t, withAgentProxy(agent.url), withConfig(func(c *server.Config) { c.PublicURL = tc.publicURL }))
			c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
			origin := strings.ReplaceAll(tc.origin, "{self}", e.url)
			for _, path := range []string{"/exec/stream", "/pty"} {
				h := http.Header{"X-Api-Key": {e.keyA}}
				if origin != "" {
					h.Set("Origin", origin)
				}
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http")+"/v1/capsules/"+c.ID+path, &websocket.DialOptions{HTTPHeader: h})
				cancel()
				if conn != nil {
					conn.CloseNow()
				}
				if resp == nil {
					t.Fatalf("%s with Origin %q: no answer: %v", path, origin, err)
				}
				if resp.StatusCode != tc.want {
					t.Errorf("%s with Origin %q: %d, want %d", path, origin, resp.StatusCode, tc.want)
				}
			}
		})
	}
}

// TestPrivateTraffic: a capsule created with public_traffic false (E2B's
// allowPublicTraffic: false) gets a traffic access token; its ports refuse
// routed requests without it (403) or with a wrong one, and take them with
// it. envd's port keeps its own token, and the owner's /proxy path needs
// only the API key. A public capsule takes routed traffic without a token.
func TestPrivateTraffic(t *testing.T) {
	agent := newAgentProxy(t)
	e := newEnv(t, withAgentProxy(agent.url))
	private := false
	c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{PublicTraffic: &private})
	if c.TrafficAccessToken == "" {
		t.Fatalf("private capsule answered without a traffic_access_token: %+v", c)
	}
	pub := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
	if pub.TrafficAccessToken != "" {
		t.Fatalf("public capsule has a traffic token")
	}

	routed := func(id, port, host, token string) (int, []byte) {
		req, _ := http.NewRequest("GET", e.url+"/x", nil)
		if host != "" {
			req.Host = host
		} else {
			req.Header.Set("E2b-Sandbox-Id", id)
			req.Header.Set("E2b-Sandbox-Port", port)
		}
		if token != "" {
			req.Header.Set("E2b-Traffic-Access-Token", token)
		}
		return send(t, req)
	}
	for _, tc := range []struct {
		name             string
		id, port, host   string
		token            string
		want             int
		reachesTheCapsle bool
	}{
		{"headers, no token", c.ID, "8080", "", "", 403, false},
		{"headers, wrong token", c.ID, "8080", "", "wrong", 403, false},
		{"headers, a token one character short", c.ID, "8080", "", c.TrafficAccessToken[1:], 403, false},
		{"headers, the token", c.ID, "8080", "", c.TrafficAccessToken, 200, true},
		{"host name, no token", c.ID, "", "8080-" + c.ID + ".localhost", "", 403, false},
		{"host name, the token", c.ID, "", "8080-" + c.ID + ".localhost", c.TrafficAccessToken, 200, true},
		{"code interpreter port, no token", c.ID, "49999", "", "", 403, false},
		{"envd's port, no token", c.ID, "49983", "", "", 404, true}, // the fake envd has no /x
		{"public capsule, no token", pub.ID, "8080", "", "", 200, true},
	} {
		agent.requests()
		code, body := routed(tc.id, tc.port, tc.host, tc.token)
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
		if code == 403 {
			var eb struct {
				SandboxID string `json:"sandboxId"`
				Code      int    `json:"code"`
				Message   string `json:"message"`
			}
			if json.Unmarshal(body, &eb); eb.Code != 403 || eb.SandboxID != tc.id || eb.Message == "" {
				t.Errorf("%s: body %s, want {sandboxId, code: 403, message}", tc.name, body)
			}
		}
		if got := len(agent.requests()) > 0; got != tc.reachesTheCapsle {
			t.Errorf("%s: reached the capsule %v, want %v", tc.name, got, tc.reachesTheCapsle)
		}
	}
	if code, body := e.do(t, "GET", "/proxy/"+c.ID+"/8080/x", e.keyA, nil); code != 200 {
		t.Errorf("owner's /proxy path without a traffic token: %d %s, want 200", code, body)
	}
	if code, _ := e.do(t, "GET", "/proxy/"+c.ID+"/8080/x", e.keyB, nil); code != 404 {
		t.Errorf("another team's /proxy path: %d, want 404", code)
	}

	// E2B's dialect: allowPublicTraffic false answers trafficAccessToken,
	// which then opens the ports.
	key := apikey.E2BForm(e.keyA)
	for _, tc := range []struct {
		body    string
		private bool
	}{
		{`{"templateID":"base","network":{"allowPublicTraffic":false}}`, true},
		{`{"templateID":"base","network":{"allowPublicTraffic":true}}`, false},
		{`{"templateID":"base"}`, false},
	} {
		code, b := e.do(t, "POST", "/v2/sandboxes", key, strings.NewReader(tc.body))
		var sb struct {
			SandboxID          string  `json:"sandboxID"`
			TrafficAccessToken *string `json:"trafficAccessToken"`
		}
		if json.Unmarshal(b, &sb); code != 201 {
			t.Fatalf("create %s: %d %s", tc.body, code, b)
		}
		if (sb.TrafficAccessToken != nil) != tc.private {
			t.Errorf("create %s: trafficAccessToken %v, want one: %v", tc.body, sb.TrafficAccessToken, tc.private)
			continue
		}
		if !tc.private {
			continue
		}
		if code, _ := routed(sb.SandboxID, "3000", "", ""); code != 403 {
			t.Errorf("E2B private sandbox without its token: %d, want 403", code)
		}
		if code, _ := routed(sb.SandboxID, "3000", "", *sb.TrafficAccessToken); code != 200 {
			t.Errorf("E2B private sandbox with its token: %d, want 200", code)
		}
		code, b = e.do(t, "GET", "/sandboxes/"+sb.SandboxID, key, nil)
		if code != 200 || !strings.Contains(string(b), `"allowPublicTraffic":false`) {
			t.Errorf("GET a private E2B sandbox: %d %s, want network.allowPublicTraffic false", code, b)
		}
	}
}

// TestForeignHostNotRouted: without a domain, only {port}-{id}.localhost
// names are host-routed; a page that rebinds its own name to the
// control plane's address reaches no capsule, by host name or by E2B's
// headers. With a domain, names under it are routed too.
func TestForeignHostNotRouted(t *testing.T) {
	for _, domain := range []string{"", "nestbox.test"} {
		agent := newAgentProxy(t)
		e := newEnv(t, withAgentProxy(agent.url), withConfig(func(c *server.Config) { c.Domain = domain }))
		c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
		for _, tc := range []struct {
			host   string
			header bool // route by E2B's headers rather than the name
			routed bool
		}{
			{"8080-" + c.ID + ".localhost", false, true},
			{"8080-" + c.ID + ".localhost:3000", false, true},
			{"8080-" + c.ID + ".LOCALHOST.", false, true},
			{"8080-" + c.ID + ".nestbox.test", false, domain != ""},
			{"8080-" + c.ID + ".nestbox.test:443", false, domain != ""},
			{"8080-" + c.ID + ".evil.example", false, false},
			{"8080-" + c.ID + ".nestbox.test.evil.example", false, false},
			{"8080-" + c.ID + ".localhost.evil.example", false, false},
			{"8080-" + c.ID + ".sub.localhost", false, false},
			{"8080-" + c.ID + ".api.nestbox.test", false, false},
			{"evil.example", true, false},
			{"localhost.evil.example:3000", true, false},
			{"localhost:3000", true, true},
			{"127.0.0.1:3000", true, true},
			{"[::1]:3000", true, true},
			{"sandbox.nestbox.test", true, domain != ""},
		} {
			agent.requests()
			req, _ := http.NewRequest("GET", e.url+"/x", nil)
			req.Host = tc.host
			if tc.header {
				req.Header.Set("E2b-Sandbox-Id", c.ID)
				req.Header.Set("E2b-Sandbox-Port", "8080")
			}
			code, _ := send(t, req)
			reached := len(agent.requests()) > 0
			if reached != tc.routed {
				t.Errorf("domain %q, Host %q (headers %v): reached the capsule %v (status %d), want %v", domain, tc.host, tc.header, reached, code, tc.routed)
			}
			if !tc.routed && code != http.StatusNotFound {
				t.Errorf("domain %q, Host %q: %d, want the API's 404", domain, tc.host, code)
			}
		}
	}
}

// countingStore counts ListCapsules calls: the scans of all capsules.
type countingStore struct {
	store.Store
	mu    sync.Mutex
	lists int
}

func (s *countingStore) ListCapsules(ctx context.Context, f store.CapsuleFilter) ([]store.Capsule, string, error) {
	s.mu.Lock()
	s.lists++
	s.mu.Unlock()
	return s.Store.ListCapsules(ctx, f)
}

func (s *countingStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lists
}

// clock is a fake clock that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestSignedURLIndex: header-less signed /files URLs find their capsule
// from the in-memory token index, which reads the store at most once per
// refresh interval however many URLs come, and drops a capsule that ended.
func TestSignedURLIndex(t *testing.T) {
	agent := newAgentProxy(t)
	var cs *countingStore
	clk := &clock{now: time.Now()}
	e := newEnv(t, withAgentProxy(agent.url),
		withStore(func(s store.Store) store.Store { cs = &countingStore{Store: s}; return cs }),
		withConfig(func(c *server.Config) { c.Now = clk.Now; c.TrafficRate = -1 }))
	var tokens []string
	var ids []string
	for range 3 {
		c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
		rec, err := e.store.GetCapsule(t.Context(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		ids, tokens = append(ids, c.ID), append(tokens, rec.AccessToken)
	}
	get := func(token string) (int, []seenRequest) {
		agent.requests()
		sig := auth.Sign("/f", auth.OpRead, "", token, 0)
		req, _ := http.NewRequest("GET", e.url+"/files?path=/f&signature="+url.QueryEscape(sig), nil)
		code, _ := send(t, req)
		return code, agent.requests()
	}
	before := cs.count()
	for i := range 30 {
		code, seen := get(tokens[i%3])
		if code != 200 || len(seen) != 1 || seen[0].Capsule != ids[i%3] {
			t.Fatalf("signed URL of capsule %s: %d, reached %+v", ids[i%3], code, seen)
		}
	}
	if n := cs.count() - before; n != 1 {
		t.Errorf("30 signed URLs scanned the store %d times, want 1 (the clock did not move)", n)
	}
	clk.advance(2 * time.Second)
	if code, _ := get(tokens[0]); code != 200 {
		t.Errorf("signed URL after the refresh interval: %d", code)
	}
	if n := cs.count() - before; n != 2 {
		t.Errorf("after the refresh interval the store was scanned %d times in all, want 2", n)
	}
	// A capsule that ends leaves the index at once.
	e.srv.Forget(ids[1])
	if code, seen := get(tokens[1]); code != 502 || len(seen) != 0 {
		t.Errorf("signed URL of a forgotten capsule: %d, reached %d", code, len(seen))
	}
}

// TestSignedURLRateLimitedFirst: the per-address limit answers a signed
// URL before the token index looks for its capsule, so an address over its
// limit cannot make the server scan the running capsules (here: rebuild
// the index from the store).
func TestSignedURLRateLimitedFirst(t *testing.T) {
	agent := newAgentProxy(t)
	var cs *countingStore
	clk := &clock{now: time.Now()}
	e := newEnv(t, withAgentProxy(agent.url),
		withStore(func(s store.Store) store.Store { cs = &countingStore{Store: s}; return cs }),
		withConfig(func(c *server.Config) { c.Now, c.TrafficRate, c.TrafficBurst = clk.Now, 0.001, 1 }))
	c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
	rec, err := e.store.GetCapsule(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	get := func() int {
		sig := auth.Sign("/f", auth.OpRead, "", rec.AccessToken, 0)
		req, _ := http.NewRequest("GET", e.url+"/files?path=/f&signature="+url.QueryEscape(sig), nil)
		code, _ := send(t, req)
		return code
	}
	if code := get(); code != 200 {
		t.Fatalf("signed URL within the burst: %d", code)
	}
	before := cs.count()
	clk.advance(2 * time.Second) // the index is stale; the bucket is still empty
	if code := get(); code != http.StatusTooManyRequests {
		t.Fatalf("signed URL beyond the burst: %d, want 429", code)
	}
	if n := cs.count() - before; n != 0 {
		t.Errorf("a rate-limited signed URL scanned the store %d times, want 0", n)
	}
}

// TestSandboxTrafficRateLimit: routed traffic beyond the per-address
// bucket is answered 429 in E2B's error shape, with Retry-After.
func TestSandboxTrafficRateLimit(t *testing.T) {
	agent := newAgentProxy(t)
	clk := &clock{now: time.Now()}
	e := newEnv(t, withAgentProxy(agent.url), withConfig(func(c *server.Config) {
		c.Now, c.TrafficRate, c.TrafficBurst = clk.Now, 1, 3
	}))
	c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
	try := func() (int, http.Header, []byte) {
		req, _ := http.NewRequest("GET", e.url+"/x", nil)
		req.Header.Set("E2b-Sandbox-Id", c.ID)
		req.Header.Set("E2b-Sandbox-Port", "8080")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b
	}
	for i := range 3 {
		if code, _, b := try(); code != 200 {
			t.Fatalf("request %d within the burst: %d %s", i, code, b)
		}
	}
	code, h, b := try()
	var eb struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &eb); code != 429 || eb.Code != 429 || eb.Message == "" || h.Get("Retry-After") == "" {
		t.Errorf("request beyond the burst: %d %s (Retry-After %q), want 429 in E2B's shape", code, b, h.Get("Retry-After"))
	}
	// The API itself is not limited by it.
	if code, _ := e.do(t, "GET", "/v1/capsules", e.keyA, nil); code != 200 {
		t.Errorf("API request while sandbox traffic is limited: %d", code)
	}
	clk.advance(time.Second)
	if code, _, b := try(); code != 200 {
		t.Errorf("a second later: %d %s, want 200", code, b)
	}
}

// TestExecOutputBounded: a one-shot exec keeps at most ExecOutputBytes of
// each stream and flags what it cut; across requests in flight the total
// is bounded (a request that finds none left is 429).
func TestExecOutputBounded(t *testing.T) {
	agent := newAgentProxy(t)
	e := newEnv(t, withAgentProxy(agent.url), withConfig(func(c *server.Config) {
		c.ExecOutputBytes, c.ExecOutputTotalBytes = 128<<10, 384<<10
	}))
	c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
	exec := func() (int, nestbox.ExecResult, []byte) {
		code, b := e.do(t, "POST", "/v1/capsules/"+c.ID+"/exec", e.keyA, strings.NewReader(`{"cmd":["yes"]}`))
		var res nestbox.ExecResult
		json.Unmarshal(b, &res)
		return code, res, b
	}
	for _, tc := range []struct {
		output    int
		wantLen   int
		truncated bool
	}{
		{100, 100, false},
		{128 << 10, 128 << 10, false},
		{128<<10 + 1, 128 << 10, true},
		{5 << 20, 128 << 10, true},
	} {
		agent.setOutput(bytes.Repeat([]byte("y"), tc.output), nil, nil)
		code, res, b := exec()
		if code != 200 {
			t.Fatalf("exec printing %d bytes: %d %s", tc.output, code, b)
		}
		if len(res.Stdout) != tc.wantLen || len(res.Stderr) != tc.wantLen || res.StdoutTruncated != tc.truncated || res.StderrTruncated != tc.truncated {
			t.Errorf("exec printing %d bytes on each stream: stdout %d bytes (truncated %v), stderr %d (truncated %v); want %d, truncated %v",
				tc.output, len(res.Stdout), res.StdoutTruncated, len(res.Stderr), res.StderrTruncated, tc.wantLen, tc.truncated)
		}
	}
	// One exec in flight holds 256 KiB of the 384: the next gets the
	// 128 KiB left (64 KiB a stream, the least an exec runs with), the one
	// after that nothing.
	hold, entered := make(chan struct{}), make(chan struct{}, 4)
	agent.setOutput(bytes.Repeat([]byte("y"), 200<<10), hold, entered)
	results := make(chan nestbox.ExecResult, 2)
	for i := range 2 {
		go func() {
			code, res, b := exec()
			if code != 200 {
				t.Errorf("exec %d in flight: %d %s", i, code, b)
			}
			results <- res
		}()
		select {
		case <-entered: // reserved, and held in the fake envd
		case <-results:
			t.Fatalf("exec %d ended before it was held", i)
		}
	}
	code, _, b := exec()
	if code != 429 || errorCode(t, b) != "resource_exhausted" {
		t.Errorf("exec with the output budget spent: %d %s, want 429 resource_exhausted", code, b)
	}
	close(hold)
	lens := map[int]bool{}
	for range 2 {
		res := <-results
		lens[len(res.Stdout)] = res.StdoutTruncated
	}
	if !lens[128<<10] || !lens[64<<10] {
		t.Errorf("two execs in flight kept %v bytes of stdout (truncated), want 128 KiB and 64 KiB, both truncated", lens)
	}
	agent.setOutput(bytes.Repeat([]byte("y"), 200<<10), nil, nil)
	if code, res, b := exec(); code != 200 || len(res.Stdout) != 128<<10 {
		t.Errorf("exec after the others ended: %d, %d bytes (%s); want the whole share back", code, len(res.Stdout), b)
	}
}

// TestStreamsCutWhenForgotten checks that an exec stream and a terminal
// end when the server forgets their capsule (Forget: a destroy seen on the
// event stream, its own or another control plane's), though the agent's
// end stays open: once a sandbox's network is gone nothing would close it.
func TestStreamsCutWhenForgotten(t *testing.T) {
	for _, path := range []string{"/exec/stream", "/pty"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			agent := newAgentProxy(t)
			hold, entered := make(chan struct{}), make(chan struct{}, 1)
			defer close(hold)
			agent.setOutput(nil, hold, entered)
			e := newEnv(t, withAgentProxy(agent.url))
			c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http")+"/v1/capsules/"+c.ID+path,
				&websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {e.keyA}}})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.CloseNow()
			if path == "/exec/stream" {
				if err := conn.Write(ctx, websocket.MessageText, []byte(`{"cmd":["sleep","600"]}`)); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-entered:
			case <-ctx.Done():
				t.Fatal("the process did not start")
			}
			e.srv.Forget(c.ID)
			for {
				if _, _, err := conn.Read(ctx); err != nil {
					if ctx.Err() != nil {
						t.Fatalf("the stream was not cut when its capsule was forgotten")
					}
					return
				}
			}
		})
	}
}
