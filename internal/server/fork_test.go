package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"nestbox.dev"
)

// TestForkRoute: a fork answers 202 with the source and each fork
// starting; with ?wait=true, 200 once they run; bad input and a source
// that is not running are refused with stable codes.
func TestForkRoute(t *testing.T) {
	e := newEnv(t)
	c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{Metadata: map[string]string{"k": "v"}})
	code, body := e.do(t, "POST", "/v1/capsules/"+c.ID+"/fork", e.keyA, strings.NewReader(`{"count":2,"timeout_seconds":120}`))
	var got nestbox.ForkResponse
	if err := json.Unmarshal(body, &got); err != nil || code != 202 || got.Source.ID != c.ID || len(got.Forks) != 2 {
		t.Fatalf("fork: %d %s, want 202 with the source and 2 forks", code, body)
	}
	for i, f := range got.Forks {
		if f.Error != nil || f.Capsule == nil || f.Capsule.Status != nestbox.StatusStarting || f.Capsule.ID == c.ID || f.Capsule.Metadata["k"] != "v" {
			t.Fatalf("fork %d: %+v, want a new capsule starting with the source's metadata", i, f)
		}
	}
	code, body = e.do(t, "POST", "/v1/capsules/"+c.ID+"/fork?wait=true&timeout=20s", e.keyA, nil)
	got = nestbox.ForkResponse{}
	if err := json.Unmarshal(body, &got); err != nil || code != 200 || len(got.Forks) != 1 || got.Forks[0].Capsule == nil || got.Forks[0].Capsule.Status != nestbox.StatusRunning {
		t.Fatalf("fork ?wait=true: %d %s, want 200 with one running fork", code, body)
	}
	fork := got.Forks[0].Capsule
	code, body = e.do(t, "GET", "/v1/capsules/"+fork.ID, e.keyB, nil)
	if code != 404 {
		t.Errorf("another team gets the fork: %d %s, want 404", code, body)
	}
	paused := e.paused(t, e.keyA, nestbox.CreateCapsuleRequest{})
	for _, tc := range []struct {
		name, id, body string
		code           int
		errCode        string
	}{
		{"too many", c.ID, `{"count":11}`, 400, "invalid_argument"},
		{"negative count", c.ID, `{"count":-1}`, 400, "invalid_argument"},
		{"negative timeout", c.ID, `{"timeout_seconds":-1}`, 400, "invalid_argument"},
		{"unknown field", c.ID, `{"n":2}`, 400, "invalid_argument"},
		{"paused source", paused.ID, `{}`, 409, "conflict"},
		{"unknown source", strings.Repeat("z", 20), `{}`, 404, "not_found"},
	} {
		code, body := e.do(t, "POST", "/v1/capsules/"+tc.id+"/fork", e.keyA, strings.NewReader(tc.body))
		if code != tc.code || errorCode(t, body) != tc.errCode {
			t.Errorf("%s: %d %s, want %d %s", tc.name, code, body, tc.code, tc.errCode)
		}
	}
}
