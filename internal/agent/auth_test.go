package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/agentpb/agentpbconnect"
)

// TestAuthenticate checks the agent's middleware on every kind of route:
// only GET /health is open; everything else without the token, or with a
// wrong one, is 401 before the handler runs (a Connect error on the API,
// JSON elsewhere); and the sandbox never sees the agent's credential.
func TestAuthenticate(t *testing.T) {
	var reached *http.Request
	h := authenticate(testToken, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = r
		w.WriteHeader(http.StatusTeapot)
	}))
	ts := httptest.NewServer(h)
	defer ts.Close()

	routes := []struct{ method, path string }{
		{"POST", "/nestbox.agent.v1.Agent/ListSandboxes"},
		{"POST", "/nestbox.agent.v1.Agent/GetSandbox"},
		{"POST", "/nestbox.agent.v1.Agent/CreateSandbox"},
		{"POST", "/nestbox.agent.v1.Agent/DestroySandbox"},
		{"POST", "/nestbox.agent.v1.Agent/Ping"},
		{"GET", "/proxy/abcdefghij0123456789/49983/health"},
		{"POST", "/proxy/abcdefghij0123456789/49983/process.Process/Start"},
		{"GET", "/proxy/abcdefghij0123456789/8080/"},
		{"POST", "/health"},
		{"GET", "/health/x"},
		{"GET", "/metrics"},
		{"GET", "/"},
	}
	for _, rt := range routes {
		proxied := strings.HasPrefix(rt.path, "/proxy/")
		for _, cred := range []struct{ name, header, value string }{
			{"no token", "", ""},
			{"wrong token", "Authorization", "Bearer " + strings.Repeat("x", len(testToken))},
			{"token prefix", "Authorization", "Bearer " + testToken[:len(testToken)-1]},
			{"token without Bearer", "Authorization", testToken},
			// Each route takes the token in its own header only.
			{"token in the other header", map[bool]string{true: "Authorization", false: ProxyAuthHeader}[proxied], "Bearer " + testToken},
		} {
			reached = nil
			req, _ := http.NewRequest(rt.method, ts.URL+rt.path, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			if cred.header != "" {
				req.Header.Set(cred.header, cred.value)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || reached != nil {
				t.Errorf("%s %s with %s: %d (handler reached: %v), want 401 before the handler", rt.method, rt.path, cred.name, resp.StatusCode, reached != nil)
			}
			if body["message"] == nil || body["code"] == nil {
				t.Errorf("%s %s with %s: body %v, want a JSON error", rt.method, rt.path, cred.name, body)
			}
		}
		// With the token, in the route's header.
		reached = nil
		req, _ := http.NewRequest(rt.method, ts.URL+rt.path, nil)
		if proxied {
			req.Header.Set(ProxyAuthHeader, "Bearer "+testToken)
			req.Header.Set("Authorization", "Basic dXNlcjo=") // envd's user: not the agent's business
		} else {
			req.Header.Set("Authorization", "Bearer "+testToken)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTeapot || reached == nil {
			t.Errorf("%s %s with the token: %d, want it served", rt.method, rt.path, resp.StatusCode)
			continue
		}
		if proxied && (reached.Header.Get(ProxyAuthHeader) != "" || reached.Header.Get("Authorization") != "Basic dXNlcjo=") {
			t.Errorf("%s %s: the handler saw %s=%q, Authorization=%q; want the agent's header gone, the caller's kept",
				rt.method, rt.path, ProxyAuthHeader, reached.Header.Get(ProxyAuthHeader), reached.Header.Get("Authorization"))
		}
	}

	// The one open route.
	for _, m := range []string{"GET", "HEAD"} {
		reached = nil
		req, _ := http.NewRequest(m, ts.URL+"/health", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if reached == nil {
			t.Errorf("%s /health without a token: %d, want it served", m, resp.StatusCode)
		}
	}

	// A handler without a token serves nobody, not even "Bearer ".
	empty := httptest.NewServer(authenticate("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = r })))
	defer empty.Close()
	reached = nil
	req, _ := http.NewRequest("POST", empty.URL+"/nestbox.agent.v1.Agent/ListSandboxes", nil)
	req.Header.Set("Authorization", "Bearer ")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized || reached != nil {
		t.Errorf("empty token with \"Bearer \": %v, %v; want 401", resp, err)
	}

	// A Connect client gets a Connect error.
	c := agentpbconnect.NewAgentClient(http.DefaultClient, ts.URL)
	_, err := c.ListSandboxes(context.Background(), connect.NewRequest(&agentpb.ListSandboxesRequest{}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("ListSandboxes without a token: %v, want unauthenticated", err)
	}
}

// TestTokenFile checks the token file: made once with 32 random bytes,
// 0600 in a 0700 directory, read back the same; a file others can read,
// or a short token, is refused.
func TestTokenFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state", "agent-token")
	tok, created, err := TokenFile(p)
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("first TokenFile: %q, created %v, %v; want 64 hex characters, created", tok, created, err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Dir(p)); st.Mode().Perm() != 0o700 {
		t.Errorf("token dir mode %v, want 0700", st.Mode().Perm())
	}
	again, created, err := TokenFile(p)
	if err != nil || created || again != tok {
		t.Errorf("second TokenFile: %q, created %v, %v; want the first token", again, created, err)
	}
	if other, _, _ := TokenFile(filepath.Join(t.TempDir(), "agent-token")); other == tok {
		t.Error("two token files hold the same token")
	}
	os.Chmod(p, 0o644)
	if _, err := ReadTokenFile(p); err == nil {
		t.Error("a token file readable by others was accepted")
	}
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	if _, err := ReadTokenFile(short); err == nil {
		t.Error("a 3-character token was accepted")
	}
	if _, err := New(context.Background(), Config{DataDir: t.TempDir()}); err == nil {
		t.Error("an agent without a token was made")
	}
}

// TestAgentAuthAndSecrets runs a real agent and sandbox: without the token
// no route but /health serves (the sandbox survives a destroy attempt),
// and with it the API's answers carry neither the env vars' values nor
// envd's access token.
func TestAgentAuthAndSecrets(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", nil)
	ctx := context.Background()
	const secretEnv, accessToken = "env-value-9f8e7d6c5b4a", "access-token-1a2b3c4d5e6f"
	sb := ta.create(t, &agentpb.SandboxConfig{AccessToken: accessToken, EnvVars: map[string]string{"SECRET": secretEnv}})

	anon := agentpbconnect.NewAgentClient(http.DefaultClient, ta.base)
	wrong := agentpbconnect.NewAgentClient(&http.Client{Transport: bearerRT("Bearer " + strings.Repeat("0", len(testToken)))}, ta.base)
	for name, c := range map[string]agentpbconnect.AgentClient{"no token": anon, "wrong token": wrong} {
		calls := map[string]error{}
		_, calls["List"] = c.ListSandboxes(ctx, connect.NewRequest(&agentpb.ListSandboxesRequest{}))
		_, calls["Get"] = c.GetSandbox(ctx, connect.NewRequest(&agentpb.GetSandboxRequest{Id: sb.Id}))
		_, calls["Destroy"] = c.DestroySandbox(ctx, connect.NewRequest(&agentpb.DestroySandboxRequest{Id: sb.Id}))
		_, calls["Create"] = c.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{}))
		_, calls["Ping"] = c.Ping(ctx, connect.NewRequest(&agentpb.PingRequest{}))
		for call, err := range calls {
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("%s with %s: %v, want unauthenticated", call, name, err)
			}
		}
	}
	if !ta.exists(t, sb.Id) {
		t.Fatal("the sandbox is gone after a destroy without the token")
	}
	if n := len(ta.list()); n != 1 {
		t.Errorf("%d sandboxes after a create without the token, want 1", n)
	}
	if code, _ := httpGet(t, http.DefaultClient, ta.envdBase(sb.Id)+"/health"); code != http.StatusUnauthorized {
		t.Errorf("envd through the proxy without the token: %d, want 401", code)
	}
	if code, _ := httpGet(t, http.DefaultClient, ta.base+"/health"); code != http.StatusOK {
		t.Errorf("/health without the token: %d, want 200", code)
	}
	// The metrics: the token's, and without a secret or an ID in them.
	for name, c := range map[string]*http.Client{"no token": http.DefaultClient, "wrong token": {Transport: bearerRT("Bearer " + strings.Repeat("0", len(testToken)))}} {
		if code, body := httpGet(t, c, ta.base+"/metrics"); code != http.StatusUnauthorized || strings.Contains(body, "nestbox_") {
			t.Errorf("/metrics with %s: %d %.200s, want 401 and no metrics", name, code, body)
		}
	}
	if code, body := httpGet(t, authClient, ta.base+"/metrics"); code != http.StatusOK || !strings.Contains(body, `nestbox_agent_sandboxes{status="running",tier=""} 1`) ||
		strings.Contains(body, secretEnv) || strings.Contains(body, accessToken) || strings.Contains(body, sb.Id) || strings.Contains(body, testToken) {
		t.Errorf("/metrics with the token: %d; want 200 with one running sandbox and no secret or ID:\n%s", code, body)
	}

	// The sandbox does not see the agent's credential: a CGI script
	// prints the request headers it got.
	pc := ta.process(sb.Id, accessToken, "")
	mustSh(t, pc, `mkdir -p /tmp/www/cgi-bin && printf '#!/bin/sh\necho Content-Type: text/plain\necho\nenv\n' > /tmp/www/cgi-bin/env && chmod +x /tmp/www/cgi-bin/env && (httpd -f -p 8080 -h /tmp/www >/dev/null 2>&1 &)`)
	code, env := httpGet(t, authClient, fmt.Sprintf("%s/proxy/%s/8080/cgi-bin/env", ta.base, sb.Id))
	if code != http.StatusOK || strings.Contains(env, testToken) || !strings.Contains(env, "REQUEST_METHOD") {
		t.Errorf("the sandbox's view of a proxied request: %d %q; want it without the agent token", code, env)
	}

	// Answers carry no secret.
	created, _ := protojson.Marshal(sb)
	got, err := ta.client.GetSandbox(ctx, connect.NewRequest(&agentpb.GetSandboxRequest{Id: sb.Id}))
	if err != nil {
		t.Fatal(err)
	}
	gotJSON, _ := protojson.Marshal(got.Msg)
	list, err := ta.client.ListSandboxes(ctx, connect.NewRequest(&agentpb.ListSandboxesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	listJSON, _ := protojson.Marshal(list.Msg)
	for name, answer := range map[string][]byte{"CreateSandbox": created, "GetSandbox": gotJSON, "ListSandboxes": listJSON} {
		if s := string(answer); strings.Contains(s, secretEnv) || strings.Contains(s, accessToken) || !strings.Contains(s, sb.Id) {
			t.Errorf("%s answer carries a secret (or not the sandbox): %s", name, s)
		}
	}
	// The sandbox still has them: they were set, just not returned.
	if out := mustSh(t, pc, "echo $SECRET"); out != secretEnv+"\n" {
		t.Errorf("env var inside the sandbox: %q", out)
	}
}

// bearerRT sets a fixed Authorization header.
type bearerRT string

func (b bearerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// TestEventsToken: the events token an agent derives from its token is
// the same for the same token (the control plane derives it from its
// copy), differs between agents, and is not the agent token or a part of
// it, so a holder of the events token cannot call the agent.
func TestEventsToken(t *testing.T) {
	a, _, err := TokenFile(filepath.Join(t.TempDir(), "agent-token"))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := TokenFile(filepath.Join(t.TempDir(), "agent-token"))
	if err != nil {
		t.Fatal(err)
	}
	ea, eb := EventsToken(a), EventsToken(b)
	if ea != EventsToken(a) {
		t.Errorf("EventsToken(%q) changes between calls", a)
	}
	if ea == eb {
		t.Errorf("two agent tokens give the same events token %q", ea)
	}
	if CheckToken(ea) != nil || len(ea) != 64 {
		t.Errorf("events token %q: want 64 hex characters", ea)
	}
	for _, half := range []string{a[:32], a[32:]} {
		if ea == a || strings.Contains(ea, half) {
			t.Errorf("events token %q gives away the agent token %q", ea, a)
		}
	}
}
