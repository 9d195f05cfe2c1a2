package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	"nestbox.dev"

	"nestbox.dev/internal/apikey"
	"nestbox.dev/internal/e2bcompat"
	"nestbox.dev/internal/proto/agentpb"
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
	code, b = e.do(t, "POST", "/sandboxes/"+sb.SandboxID+"/resume", key, strings.NewReader(`{}`))
	if code != http.StatusConflict {
		t.Fatalf("resume of a running sandbox: %d %s, want 409", code, b)
	}
	e2bError(t, code, b)

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

// TestE2BErrorShapes walks every E2B route with bad input (no key, an
// unknown sandbox, bodies and queries it cannot take) and checks that each
// error answer is E2B's {code, message}, with code equal to the status.
func TestE2BErrorShapes(t *testing.T) {
	e := newEnv(t)
	key := apikey.E2BForm(e.keyA)
	sb := e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base"}`)
	routes := e2bcompat.New(e2bcompat.Config{}).Routes()
	if len(routes) < 10 {
		t.Fatalf("only %d E2B routes", len(routes))
	}
	for _, rt := range routes {
		method, pattern, _ := strings.Cut(rt.Pattern, " ")
		for _, tc := range []struct {
			name, key, id, body, query string
			want                       int // 0: any error status
		}{
			{"no key", "", sb.SandboxID, `{}`, "", 401},
			{"malformed key", "e2b_xyz", sb.SandboxID, `{}`, "", 401},
			{"unknown sandbox", key, "aaaaaaaaaaaaaaaaaaaa", `{"timeout":60}`, "", 0},
			{"malformed JSON", key, sb.SandboxID, `{"timeout":`, "", 0},
			{"wrong type", key, sb.SandboxID, `{"timeout":"x","templateID":1}`, "", 0},
			{"bad query", key, sb.SandboxID, `{}`, "?limit=0&start=x&end=y&state=frozen", 0},
		} {
			path := strings.ReplaceAll(pattern, "{id}", tc.id) + tc.query
			code, b := e.do(t, method, path, tc.key, strings.NewReader(tc.body))
			if tc.want != 0 && code != tc.want {
				t.Errorf("%s %s (%s): %d %s, want %d", method, path, tc.name, code, b, tc.want)
				continue
			}
			if tc.name == "unknown sandbox" && strings.Contains(pattern, "{id}") && code != 404 {
				t.Errorf("%s %s (%s): %d %s, want 404", method, path, tc.name, code, b)
			}
			if code < 400 {
				continue // a route that takes no body or query
			}
			var eb map[string]any
			if err := json.Unmarshal(b, &eb); err != nil || len(eb) != 2 || eb["code"] != float64(code) || eb["message"] == "" {
				t.Errorf("%s %s (%s): %d %s, want E2B's {code, message}", method, path, tc.name, code, b)
			}
			if strings.Contains(string(b), "timeout_seconds") {
				t.Errorf("%s %s (%s): %s names a field E2B does not have", method, path, tc.name, b)
			}
		}
	}
}

// TestE2BTimeoutErrorsNameTimeout: timeout errors name the field the
// client sent.
func TestE2BTimeoutErrorsNameTimeout(t *testing.T) {
	e := newEnv(t)
	key := apikey.E2BForm(e.keyA)
	sb := e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base"}`)
	for _, tc := range []struct{ path, body string }{
		{"/v2/sandboxes", `{"templateID":"base","timeout":-1}`},
		{"/v2/sandboxes", `{"templateID":"base","timeout":100000000}`},
		{"/sandboxes", `{"templateID":"base","timeout":100000000}`},
		{"/sandboxes/" + sb.SandboxID + "/timeout", `{"timeout":0}`},
		{"/sandboxes/" + sb.SandboxID + "/timeout", `{"timeout":86400}`}, // past creation + 24 h
		{"/v2/sandboxes/" + sb.SandboxID + "/connect", `{"timeout":100000000}`},
		{"/sandboxes/" + sb.SandboxID + "/connect", `{"timeout":-5}`},
	} {
		code, b := e.do(t, "POST", tc.path, key, strings.NewReader(tc.body))
		if code != 400 {
			t.Errorf("POST %s %s: %d %s, want 400", tc.path, tc.body, code, b)
			continue
		}
		if msg := e2bError(t, code, b); !strings.HasPrefix(msg, "timeout ") || strings.Contains(msg, "timeout_seconds") {
			t.Errorf("POST %s %s: %q, want an error about timeout", tc.path, tc.body, msg)
		}
	}
}

// TestE2BListStartedAfter: startedAfter filters on the startedAt the list
// reports, in the query, so every page but the last is full.
func TestE2BListStartedAfter(t *testing.T) {
	e := newEnv(t)
	key := apikey.E2BForm(e.keyA)
	for range 2 {
		e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base"}`)
	}
	time.Sleep(20 * time.Millisecond)
	after := time.Now().UTC()
	want := map[string]bool{}
	for range 5 {
		want[e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base"}`).SandboxID] = true
	}
	for _, order := range []string{"desc", "asc"} {
		seen := map[string]bool{}
		token := ""
		for page := 0; ; page++ {
			if page > 10 {
				t.Fatal("the list does not end")
			}
			req, _ := http.NewRequest("GET", e.url+"/v2/sandboxes?limit=2&order="+order+"&startedAfter="+after.Format(time.RFC3339Nano)+"&nextToken="+token, nil)
			req.Header.Set("X-API-KEY", key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var items []struct {
				SandboxID string    `json:"sandboxID"`
				StartedAt time.Time `json:"startedAt"`
			}
			json.NewDecoder(resp.Body).Decode(&items)
			resp.Body.Close()
			token = resp.Header.Get("X-Next-Token")
			if resp.StatusCode != 200 || (token != "" && len(items) != 2) {
				t.Fatalf("%s page %d: %d, %d items, next %q; want full pages of 2", order, page, resp.StatusCode, len(items), token)
			}
			for _, it := range items {
				if !want[it.SandboxID] || seen[it.SandboxID] || it.StartedAt.Before(after) {
					t.Fatalf("%s page %d: unexpected %+v (started after %s)", order, page, it, after)
				}
				seen[it.SandboxID] = true
			}
			if token == "" {
				break
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("%s: pages held %d sandboxes, want %d", order, len(seen), len(want))
		}
	}
}

// TestE2BMetricsRange: getMetrics({start, end}) returns the host's kept
// samples in the range, and without one, all of them and a reading now.
func TestE2BMetricsRange(t *testing.T) {
	e := newEnv(t)
	key := apikey.E2BForm(e.keyA)
	sb := e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base"}`)
	base := time.Now().Add(time.Minute).Truncate(time.Second) // after the create, before the reading's range ends
	for i := range 6 {
		e.agent.AddSample(sb.SandboxID, &agentpb.SandboxMetrics{At: timestamppb.New(base.Add(time.Duration(5*i) * time.Second)), CpuCount: 1, MemoryUsedBytes: uint64(i + 1)})
	}
	get := func(query string) (int, []struct {
		TimestampUnix int64  `json:"timestampUnix"`
		MemUsed       uint64 `json:"memUsed"`
	}) {
		code, b := e.do(t, "GET", "/sandboxes/"+sb.SandboxID+"/metrics"+query, key, nil)
		var out []struct {
			TimestampUnix int64  `json:"timestampUnix"`
			MemUsed       uint64 `json:"memUsed"`
		}
		json.Unmarshal(b, &out)
		return code, out
	}
	b := base.Unix()
	code, got := get(fmt.Sprintf("?start=%d&end=%d", b+5, b+15))
	if code != 200 || len(got) != 3 || got[0].TimestampUnix != b+5 || got[2].TimestampUnix != b+15 || got[0].MemUsed != 2 {
		t.Fatalf("metrics in [+5 s, +15 s]: %d %+v, want the samples at +5, +10, +15 s", code, got)
	}
	if code, got := get(fmt.Sprintf("?end=%d", b-1)); code != 200 || len(got) != 1 || got[0].MemUsed != 0 {
		t.Fatalf("metrics before the samples: %d %+v, want only the reading now", code, got)
	}
	// Without a range: every kept sample; the reading now is older than
	// the last (future) sample here, so it is not added after it.
	if code, got := get(""); code != 200 || len(got) != 6 {
		t.Fatalf("metrics without a range: %d %d samples, want 6", code, len(got))
	}
	code, bb := e.do(t, "GET", fmt.Sprintf("/sandboxes/%s/metrics?start=%d&end=%d", sb.SandboxID, b+10, b), key, nil)
	if code != 400 {
		t.Fatalf("metrics with start after end: %d %s, want 400", code, bb)
	}
	e2bError(t, code, bb)
	// A fresh sandbox with no samples yet gets the reading now.
	fresh := e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base"}`)
	code, bb = e.do(t, "GET", "/sandboxes/"+fresh.SandboxID+"/metrics", key, nil)
	var one []json.RawMessage
	if json.Unmarshal(bb, &one); code != 200 || len(one) != 1 {
		t.Fatalf("metrics of a fresh sandbox: %d %s, want the reading now", code, bb)
	}
}

// TestE2BPauseResume: pause (204, then 409), the paused state in GET and
// the lists (mixed running and paused pages), connect resuming (201, then
// 200), the deprecated resume, and create's auto-pause options.
func TestE2BPauseResume(t *testing.T) {
	e := newEnv(t)
	key := apikey.E2BForm(e.keyA)
	sb := e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base","metadata":{"run":"p"}}`)
	other := e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base","metadata":{"run":"p"}}`)
	if code, b := e.do(t, "POST", "/sandboxes/"+sb.SandboxID+"/pause", key, nil); code != 204 {
		t.Fatalf("pause: %d %s, want 204", code, b)
	}
	code, b := e.do(t, "POST", "/sandboxes/"+sb.SandboxID+"/pause", key, strings.NewReader(`{"memory":true}`))
	if code != 409 {
		t.Fatalf("second pause: %d %s, want 409", code, b)
	}
	e2bError(t, code, b)
	state := func(id string) string {
		_, b := e.do(t, "GET", "/sandboxes/"+id, key, nil)
		var d struct {
			State string `json:"state"`
		}
		json.Unmarshal(b, &d)
		return d.State
	}
	if st := state(sb.SandboxID); st != "paused" {
		t.Fatalf("GET a paused sandbox: state %q, want paused", st)
	}
	list := func(query string) map[string]string {
		out := map[string]string{}
		token := ""
		for page := 0; page < 10; page++ {
			req, _ := http.NewRequest("GET", e.url+"/v2/sandboxes?limit=1&metadata=run%3Dp&"+query+"&nextToken="+token, nil)
			req.Header.Set("X-API-KEY", key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var items []struct {
				SandboxID string `json:"sandboxID"`
				State     string `json:"state"`
			}
			json.NewDecoder(resp.Body).Decode(&items)
			resp.Body.Close()
			for _, it := range items {
				out[it.SandboxID] = it.State
			}
			if token = resp.Header.Get("X-Next-Token"); token == "" {
				break
			}
		}
		return out
	}
	if got := list("state=paused"); len(got) != 1 || got[sb.SandboxID] != "paused" {
		t.Fatalf("state=paused lists %v", got)
	}
	if got := list("state=running"); len(got) != 1 || got[other.SandboxID] != "running" {
		t.Fatalf("state=running lists %v", got)
	}
	if got := list(""); len(got) != 2 || got[sb.SandboxID] != "paused" || got[other.SandboxID] != "running" {
		t.Fatalf("both states, pages of 1, list %v", got)
	}
	code, b = e.do(t, "POST", "/v2/sandboxes/"+sb.SandboxID+"/connect", key, strings.NewReader(`{"timeout":60}`))
	var resumed e2bSandbox
	if json.Unmarshal(b, &resumed); code != 201 || resumed.SandboxID != sb.SandboxID || resumed.EnvdAccessToken != sb.EnvdAccessToken {
		t.Fatalf("connect to a paused sandbox: %d %s, want 201 and the same sandbox", code, b)
	}
	if st := state(sb.SandboxID); st != "running" {
		t.Fatalf("after connect: state %q", st)
	}
	if code, b := e.do(t, "POST", "/v2/sandboxes/"+sb.SandboxID+"/connect", key, nil); code != 200 {
		t.Fatalf("connect to a running sandbox: %d %s, want 200", code, b)
	}
	// The deprecated resume.
	if code, b := e.do(t, "POST", "/sandboxes/"+other.SandboxID+"/pause", key, strings.NewReader(`{"memory":false}`)); code != 204 {
		t.Fatalf("filesystem-only pause: %d %s", code, b)
	}
	if code, b := e.do(t, "POST", "/sandboxes/"+other.SandboxID+"/resume", key, strings.NewReader(`{"timeout":30}`)); code != 201 {
		t.Fatalf("resume: %d %s, want 201", code, b)
	}
	// Create with auto-pause and auto-resume.
	auto := e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base","autoPause":true,"autoPauseMemory":false,"autoResume":{"enabled":true}}`)
	_, b = e.do(t, "GET", "/sandboxes/"+auto.SandboxID, key, nil)
	var d struct {
		Lifecycle struct {
			OnTimeout  string `json:"onTimeout"`
			AutoResume bool   `json:"autoResume"`
		} `json:"lifecycle"`
	}
	if json.Unmarshal(b, &d); d.Lifecycle.OnTimeout != "pause" || !d.Lifecycle.AutoResume {
		t.Fatalf("an auto-pause, auto-resume sandbox: %s", b)
	}
	c, err := e.store.GetCapsule(t.Context(), auto.SandboxID)
	if err != nil || !c.AutoPause || c.AutoPauseMemory || !c.AutoResume {
		t.Fatalf("stored auto-pause options: %+v, %v; want pause without memory, auto-resume", c.Capsule, err)
	}
}
