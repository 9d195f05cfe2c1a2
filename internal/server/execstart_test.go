package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"nestbox.dev"
)

// TestExecCannotStart: a one-shot exec of a program that is missing or
// not executable answers 200 with a shell's exit code (127, 126) and one
// message naming the operation once; a 404 stays the capsule's.
func TestExecCannotStart(t *testing.T) {
	agent := newAgentProxy(t)
	e := newEnv(t, withAgentProxy(agent.url))
	c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
	for _, tc := range []struct {
		cmd  string
		code int
	}{{"nosuchprog", 127}, {"/etc/passwd", 126}} {
		status, body := e.do(t, "POST", "/v1/capsules/"+c.ID+"/exec", e.keyA, strings.NewReader(`{"cmd":["`+tc.cmd+`"]}`))
		var res nestbox.ExecResult
		if err := json.Unmarshal(body, &res); status != 200 || err != nil {
			t.Fatalf("exec %s: %d %s", tc.cmd, status, body)
		}
		if res.ExitCode != tc.code || res.Pid != 0 || strings.Count(res.Error, "start process") != 1 || !strings.Contains(res.Error, tc.cmd) {
			t.Errorf("exec %s: %+v, want exit %d and an error naming it, with one \"start process\"", tc.cmd, res, tc.code)
		}
	}
	if status, body := e.do(t, "POST", "/v1/capsules/nosuchcapsule/exec", e.keyA, strings.NewReader(`{"cmd":["nosuchprog"]}`)); status != 404 {
		t.Errorf("exec in a missing capsule: %d %s, want 404", status, body)
	}
}
