package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/apikey"
)

// e2bError decodes E2B's error body and checks its code matches the status.
func e2bError(t *testing.T, status int, body []byte) string {
	t.Helper()
	var eb struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &eb); err != nil || eb.Code != status || eb.Message == "" {
		t.Fatalf("body %q is not E2B's error body for %d", body, status)
	}
	return eb.Message
}

type e2bSandbox struct {
	SandboxID       string `json:"sandboxID"`
	TemplateID      string `json:"templateID"`
	ClientID        string `json:"clientID"`
	EnvdVersion     string `json:"envdVersion"`
	EnvdAccessToken string `json:"envdAccessToken"`
}

func (e *env) e2bCreate(t *testing.T, key, path, body string) e2bSandbox {
	t.Helper()
	code, b := e.do(t, "POST", path, key, strings.NewReader(body))
	var sb e2bSandbox
	if json.Unmarshal(b, &sb); code != http.StatusCreated || sb.SandboxID == "" {
		t.Fatalf("POST %s %s: %d %s", path, body, code, b)
	}
	return sb
}

func TestE2BCreateAndLifecycle(t *testing.T) {
	e := newEnv(t)
	key := apikey.E2BForm(e.keyA)
	// Unknown fields (newer SDKs, MCP, volumes) are accepted.
	sb := e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base","metadata":{"k":"v"},"envVars":{"A":"1"},"timeout":60,"mcp":{"x":1},"volumeMounts":[]}`)
	if sb.TemplateID != "base" || sb.ClientID == "" || sb.EnvdVersion == "" || sb.EnvdAccessToken == "" {
		t.Fatalf("v2 create answered %+v: want a secured, running sandbox", sb)
	}
	// v1 with secure:false makes a sandbox whose envd needs no token.
	insecure := e.e2bCreate(t, key, "/sandboxes", `{"templateID":"base","secure":false}`)
	if insecure.EnvdAccessToken != "" {
		t.Fatalf("an insecure sandbox got a token: %+v", insecure)
	}

	code, b := e.do(t, "GET", "/sandboxes/"+sb.SandboxID, key, nil)
	var d struct {
		State    string            `json:"state"`
		Metadata map[string]string `json:"metadata"`
		CPUCount int               `json:"cpuCount"`
	}
	if json.Unmarshal(b, &d); code != 200 || d.State != "running" || d.Metadata["k"] != "v" || d.CPUCount < 1 {
		t.Fatalf("GET /sandboxes/{id}: %d %s", code, b)
	}
	for _, path := range []string{"/sandboxes/" + sb.SandboxID + "/connect", "/v2/sandboxes/" + sb.SandboxID + "/connect"} {
		if code, b := e.do(t, "POST", path, key, strings.NewReader(`{"timeout":120}`)); code != 200 {
			t.Fatalf("connect %s: %d %s", path, code, b)
		}
	}
	if code, b := e.do(t, "POST", "/v2/sandboxes/"+sb.SandboxID+"/connect", key, nil); code != 200 {
		t.Fatalf("connect without a body: %d %s", code, b)
	}
	if code, b := e.do(t, "POST", "/sandboxes/"+sb.SandboxID+"/timeout", key, strings.NewReader(`{"timeout":30}`)); code != 204 {
		t.Fatalf("timeout: %d %s", code, b)
	}
	if code, b := e.do(t, "GET", "/sandboxes/"+sb.SandboxID+"/metrics", key, nil); code != 200 || !strings.HasPrefix(string(b), "[") {
		t.Fatalf("metrics: %d %s", code, b)
	}
	code, b = e.do(t, "POST", "/sandboxes/"+sb.SandboxID+"/pause", key, nil)
	if code != http.StatusNotImplemented {
		t.Fatalf("pause: %d %s, want 501 until pause exists", code, b)
	}
	e2bError(t, code, b)
	code, b = e.do(t, "POST", "/sandboxes/"+sb.SandboxID+"/resume", key, strings.NewReader(`{}`))
	if code != http.StatusConflict {
		t.Fatalf("resume of a running sandbox: %d %s, want 409", code, b)
	}

	// Kill answers 204 once the sandbox is gone; the second kill is 404.
	if code, b := e.do(t, "DELETE", "/sandboxes/"+sb.SandboxID, key, nil); code != 204 {
		t.Fatalf("kill: %d %s", code, b)
	}
	if e.agent.Has(sb.SandboxID) {
		t.Fatal("kill answered before the sandbox was gone")
	}
	for _, r := range []struct{ method, path string }{
		{"DELETE", "/sandboxes/" + sb.SandboxID},
		{"GET", "/sandboxes/" + sb.SandboxID},
		{"POST", "/v2/sandboxes/" + sb.SandboxID + "/connect"},
		{"POST", "/sandboxes/" + sb.SandboxID + "/pause"},
	} {
		code, b := e.do(t, r.method, r.path, key, nil)
		if code != 404 {
			t.Errorf("%s %s after kill: %d %s, want 404", r.method, r.path, code, b)
			continue
		}
		e2bError(t, code, b)
	}
}

func TestE2BBadRequests(t *testing.T) {
	e := newEnv(t)
	key := apikey.E2BForm(e.keyA)
	sb := e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base"}`)
	for _, tc := range []struct {
		name, key, method, path, body string
		want                          int
	}{
		{"no key", "", "POST", "/v2/sandboxes", `{"templateID":"base"}`, 401},
		{"wrong key", "e2b_" + strings.Repeat("0", 40), "POST", "/v2/sandboxes", `{"templateID":"base"}`, 401},
		{"malformed key", "e2b_xyz", "GET", "/v2/sandboxes", ``, 401},
		{"other team's sandbox", apikey.E2BForm(e.keyB), "GET", "/sandboxes/" + sb.SandboxID, ``, 404},
		{"other team's kill", apikey.E2BForm(e.keyB), "DELETE", "/sandboxes/" + sb.SandboxID, ``, 404},
		{"missing body", key, "POST", "/v2/sandboxes", ``, 400},
		{"malformed JSON", key, "POST", "/v2/sandboxes", `{"templateID":`, 400},
		{"wrong type", key, "POST", "/v2/sandboxes", `{"templateID":"base","timeout":"long"}`, 400},
		{"negative timeout", key, "POST", "/v2/sandboxes", `{"templateID":"base","timeout":-1}`, 400},
		{"unknown template", key, "POST", "/v2/sandboxes", `{"templateID":"nope"}`, 404},
		{"autoPause before pause exists", key, "POST", "/v2/sandboxes", `{"templateID":"base","autoPause":true}`, 400},
		{"bad env var name", key, "POST", "/v2/sandboxes", `{"templateID":"base","envVars":{"1X":"y"}}`, 400},
		{"timeout without a body", key, "POST", "/sandboxes/" + sb.SandboxID + "/timeout", ``, 400},
		{"unknown sandbox", key, "GET", "/sandboxes/aaaaaaaaaaaaaaaaaaaa", ``, 404},
		{"bad list limit", key, "GET", "/v2/sandboxes?limit=0", ``, 400},
		{"bad list state", key, "GET", "/v2/sandboxes?state=sleeping", ``, 400},
		{"bad list order", key, "GET", "/v2/sandboxes?order=up", ``, 400},
		{"bad next token", key, "GET", "/v2/sandboxes?nextToken=zzz", ``, 400},
	} {
		code, b := e.do(t, tc.method, tc.path, tc.key, strings.NewReader(tc.body))
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, b, tc.want)
			continue
		}
		e2bError(t, code, b)
	}
}

func TestE2BList(t *testing.T) {
	e := newEnv(t)
	key := apikey.E2BForm(e.keyA)
	want := map[string]bool{}
	for range 3 {
		want[e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base","metadata":{"run":"r1","x":"a b"}}`).SandboxID] = true
	}
	e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base","metadata":{"run":"r2"}}`)
	e.e2bCreate(t, apikey.E2BForm(e.keyB), "/v2/sandboxes", `{"templateID":"base","metadata":{"run":"r1"}}`)

	seen := map[string]bool{}
	token := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("the list does not end")
		}
		req, _ := http.NewRequest("GET", e.url+"/v2/sandboxes?limit=1&order=asc&metadata=run%3Dr1%26x%3Da%2Bb&state=running&nextToken="+token, nil)
		req.Header.Set("X-API-KEY", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var items []struct {
			SandboxID string            `json:"sandboxID"`
			Metadata  map[string]string `json:"metadata"`
			State     string            `json:"state"`
		}
		json.NewDecoder(resp.Body).Decode(&items)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(items) > 1 {
			t.Fatalf("page %d: %d, %d items", page, resp.StatusCode, len(items))
		}
		for _, it := range items {
			if !want[it.SandboxID] || seen[it.SandboxID] || it.State != "running" {
				t.Fatalf("page %d: unexpected %+v", page, it)
			}
			seen[it.SandboxID] = true
		}
		if token = resp.Header.Get("X-Next-Token"); token == "" {
			break
		}
	}
	if len(seen) != 3 {
		t.Fatalf("pages held %d sandboxes, want 3", len(seen))
	}
	code, b := e.do(t, "GET", "/v2/sandboxes?state=paused", key, nil)
	if code != 200 || strings.TrimSpace(string(b)) != "[]" {
		t.Fatalf("paused sandboxes: %d %s, want none", code, b)
	}
	code, b = e.do(t, "GET", "/sandboxes", key, nil)
	var all []json.RawMessage
	if json.Unmarshal(b, &all); code != 200 || len(all) != 4 {
		t.Fatalf("GET /sandboxes: %d, %d sandboxes, want team A's 4", code, len(all))
	}
}

func TestSandboxTrafficToUnknownSandbox(t *testing.T) {
	e := newEnv(t)
	for _, hdr := range []map[string]string{
		{"E2b-Sandbox-Id": "aaaaaaaaaaaaaaaaaaaa", "E2b-Sandbox-Port": "49983"},
		{"E2b-Sandbox-Id": "nope"},
		{"E2b-Sandbox-Id": "aaaaaaaaaaaaaaaaaaaa", "E2b-Sandbox-Port": "0x50"},
	} {
		req, _ := http.NewRequest("GET", e.url+"/health", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			SandboxID string `json:"sandboxId"`
			Code      int    `json:"code"`
			Message   string `json:"message"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 502 || body.Code != 502 || body.SandboxID != hdr["E2b-Sandbox-Id"] || body.Message == "" {
			t.Errorf("%v: %d %+v, want E2B's 502 body", hdr, resp.StatusCode, body)
		}
	}
	// A host name of a sandbox that does not exist, and a signed URL
	// nobody signed.
	req, _ := http.NewRequest("GET", e.url+"/", nil)
	req.Host = "8080-aaaaaaaaaaaaaaaaaaaa.localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Errorf("host-routed request to an unknown sandbox: %d, want 502", resp.StatusCode)
	}
	resp, err = http.Get(e.url + "/files?path=/etc/hostname&signature=v1_abc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Errorf("signed URL of no sandbox: %d, want 502", resp.StatusCode)
	}
}

// TestE2BConnectExtends: a connect gives the sandbox at least its timeout
// (300 s when the request names none) from now, and never shortens it.
func TestE2BConnectExtends(t *testing.T) {
	e := newEnv(t)
	key := apikey.E2BForm(e.keyA)
	sb := e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base","timeout":60}`)
	endAt := func() time.Time {
		_, b := e.do(t, "GET", "/sandboxes/"+sb.SandboxID, key, nil)
		var d struct {
			EndAt time.Time `json:"endAt"`
		}
		json.Unmarshal(b, &d)
		return d.EndAt
	}
	if left := time.Until(endAt()); left > 61*time.Second {
		t.Fatalf("created with 60 s, %s left", left)
	}
	if code, b := e.do(t, "POST", "/v2/sandboxes/"+sb.SandboxID+"/connect", key, nil); code != 200 {
		t.Fatalf("connect: %d %s", code, b)
	}
	if left := time.Until(endAt()); left < 290*time.Second {
		t.Fatalf("after a connect without a timeout, %s left; want about 300 s", left)
	}
	if code, b := e.do(t, "POST", "/v2/sandboxes/"+sb.SandboxID+"/connect", key, strings.NewReader(`{"timeout":10}`)); code != 200 {
		t.Fatalf("connect: %d %s", code, b)
	}
	if left := time.Until(endAt()); left < 280*time.Second {
		t.Fatalf("a connect with a shorter timeout shortened the life to %s", left)
	}
}

// TestE2BCreateAbandoned: a client that gives up on a create never learns
// the sandbox's ID, so the sandbox is destroyed rather than left running.
func TestE2BCreateAbandoned(t *testing.T) {
	e := newEnv(t)
	e.agent.Gate = make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.url+"/v2/sandboxes", strings.NewReader(`{"templateID":"base"}`))
	req.Header.Set("X-API-Key", apikey.E2BForm(e.keyA))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("create answered %d while the host held it", resp.StatusCode)
	}
	close(e.agent.Gate)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, b := e.do(t, "GET", "/v1/capsules?status=starting,running,stopping", e.keyA, nil)
		var list nestbox.CapsuleList
		json.Unmarshal(b, &list)
		if code == 200 && len(list.Capsules) == 0 && e.agent.Count() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned sandbox lives on: %s, %d on the host", b, e.agent.Count())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
