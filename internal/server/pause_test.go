package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"nestbox.dev"
)

// paused creates a capsule with req and pauses it, waiting for both.
func (e *env) paused(t *testing.T, key string, req nestbox.CreateCapsuleRequest) nestbox.Capsule {
	t.Helper()
	c := e.running(t, key, req)
	code, body := e.do(t, "POST", "/v1/capsules/"+c.ID+"/pause?wait=true&timeout=20s", key, nil)
	if code != 200 {
		t.Fatalf("pause %s: %d %s, want 200 with ?wait", c.ID, code, body)
	}
	json.Unmarshal(body, &c)
	if c.Status != nestbox.StatusPaused {
		t.Fatalf("capsule %s is %s after the pause, want paused", c.ID, c.Status)
	}
	return c
}

func TestPauseResumeRoutes(t *testing.T) {
	e := newEnv(t)
	c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
	code, body := e.do(t, "POST", "/v1/capsules/"+c.ID+"/pause", e.keyA, strings.NewReader(`{"memory":false}`))
	var got nestbox.Capsule
	if json.Unmarshal(body, &got); code != 202 || got.Status != nestbox.StatusPausing {
		t.Fatalf("pause: %d %s, want 202 pausing", code, body)
	}
	code, body = e.do(t, "GET", "/v1/capsules/"+c.ID+"?wait=paused&timeout=20s", e.keyA, nil)
	if json.Unmarshal(body, &got); code != 200 || got.Status != nestbox.StatusPaused || got.PausedAt == nil {
		t.Fatalf("wait for paused: %d %s", code, body)
	}
	for _, tc := range []struct {
		name, path, body string
		code             int
		errCode          string
	}{
		{"pause a paused capsule", "/pause", "", 409, "conflict"},
		{"exec on a paused capsule without auto-resume", "/exec", `{"cmd":["true"]}`, 409, "capsule_paused"},
		{"files of a paused capsule without auto-resume", "/files/mkdir", `{"path":"/d"}`, 409, "capsule_paused"},
		{"unknown field", "/resume", `{"timeout":5}`, 400, "invalid_argument"},
		{"negative timeout", "/resume", `{"timeout_seconds":-1}`, 400, "invalid_argument"},
		{"bad wait", "/resume?wait=maybe", "", 400, "invalid_argument"},
	} {
		code, body := e.do(t, "POST", "/v1/capsules/"+c.ID+tc.path, e.keyA, strings.NewReader(tc.body))
		if code != tc.code || errorCode(t, body) != tc.errCode {
			t.Errorf("%s: %d %s, want %d %s", tc.name, code, body, tc.code, tc.errCode)
		}
	}
	code, body = e.do(t, "POST", "/v1/capsules/"+c.ID+"/resume?wait=true&timeout=20s", e.keyA, strings.NewReader(`{"timeout_seconds":120}`))
	if json.Unmarshal(body, &got); code != 200 || got.Status != nestbox.StatusRunning {
		t.Fatalf("resume ?wait=true: %d %s, want 200 running", code, body)
	}
	code, body = e.do(t, "POST", "/v1/capsules/"+c.ID+"/resume", e.keyA, nil)
	if code != 409 || errorCode(t, body) != "conflict" {
		t.Errorf("resume a running capsule: %d %s, want 409 conflict", code, body)
	}
	code, body = e.do(t, "GET", "/v1/capsules?status=paused,resuming,missing", e.keyA, nil)
	if code != 200 {
		t.Errorf("list by the new statuses: %d %s", code, body)
	}
}

// TestAutoResumeOnTraffic: exec to a paused capsule created with
// auto_resume resumes it and succeeds; E2B's routed traffic to a paused
// capsule without it gets E2B's 502 body.
func TestAutoResumeOnTraffic(t *testing.T) {
	agent := newAgentProxy(t)
	e := newEnv(t, withAgentProxy(agent.url))
	auto := e.paused(t, e.keyA, nestbox.CreateCapsuleRequest{AutoResume: true})
	if !auto.AutoResume {
		t.Fatalf("capsule %s: auto_resume not recorded", auto.ID)
	}
	code, body := e.do(t, "GET", "/proxy/"+auto.ID+"/8080/x", e.keyA, nil)
	if code != 200 {
		t.Fatalf("proxy to a paused auto-resume capsule: %d %s, want 200 after the resume", code, body)
	}
	var got nestbox.Capsule
	_, body = e.do(t, "GET", "/v1/capsules/"+auto.ID, e.keyA, nil)
	if json.Unmarshal(body, &got); got.Status != nestbox.StatusRunning {
		t.Errorf("after routed traffic the capsule is %s, want running", got.Status)
	}

	manual := e.paused(t, e.keyA, nestbox.CreateCapsuleRequest{})
	req, _ := http.NewRequest("GET", e.url+"/health", nil)
	req.Header.Set("E2b-Sandbox-Id", manual.ID)
	req.Header.Set("E2b-Sandbox-Port", "49983")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var eb struct {
		SandboxID string `json:"sandboxId"`
		Code      int    `json:"code"`
	}
	json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if resp.StatusCode != 502 || eb.Code != 502 || eb.SandboxID != manual.ID {
		t.Errorf("routed traffic to a paused capsule: %d %+v, want E2B's 502 body", resp.StatusCode, eb)
	}
	_, body = e.do(t, "GET", "/v1/capsules/"+manual.ID, e.keyA, nil)
	if json.Unmarshal(body, &got); got.Status != nestbox.StatusPaused {
		t.Errorf("a capsule without auto_resume is %s after routed traffic, want paused", got.Status)
	}

	// A private capsule with auto-resume: traffic without its token is
	// refused before anything is resumed.
	private := false
	locked := e.paused(t, e.keyA, nestbox.CreateCapsuleRequest{AutoResume: true, PublicTraffic: &private})
	req, _ = http.NewRequest("GET", e.url+"/x", nil)
	req.Header.Set("E2b-Sandbox-Id", locked.ID)
	req.Header.Set("E2b-Sandbox-Port", "8080")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("tokenless traffic to a private paused capsule: %d, want 403", resp.StatusCode)
	}
	_, body = e.do(t, "GET", "/v1/capsules/"+locked.ID, e.keyA, nil)
	if json.Unmarshal(body, &got); got.Status != nestbox.StatusPaused {
		t.Errorf("tokenless traffic woke a private capsule: it is %s, want paused", got.Status)
	}
}
