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
	"nestbox.dev/internal/server"
	"nestbox.dev/internal/store"
)

// TestCreateLimitsOverHTTP checks how both create surfaces answer a request
// the lifecycle refuses at admission: an allow_out the egress deny list
// blocks is 400, an unknown template 404, a team over its quota 429; each
// with the surface's error body, and nothing created.
func TestCreateLimitsOverHTTP(t *testing.T) {
	e := newEnv(t)
	e2bKey := apikey.E2BForm(e.keyA)
	for _, tc := range []struct {
		name, path, key, body string
		want                  int
		code                  string // Nestbox's error code
	}{
		{"metadata in allow_out", "/v1/capsules", e.keyA, `{"allow_out":["169.254.169.254"]}`, 400, "invalid_argument"},
		{"private range in allow_out", "/v1/capsules", e.keyA, `{"allow_out":["8.8.8.8","10.0.0.0/8"]}`, 400, "invalid_argument"},
		{"unknown template", "/v1/capsules", e.keyA, `{"template":"nope"}`, 404, "not_found"},
		{"too many vCPUs", "/v1/capsules", e.keyA, `{"vcpus":100000}`, 400, "invalid_argument"},
		{"E2B: metadata in allowOut", "/v2/sandboxes", e2bKey, `{"templateID":"base","network":{"allowOut":["169.254.169.254"]}}`, 400, ""},
		{"E2B: private range in allowOut", "/v2/sandboxes", e2bKey, `{"templateID":"base","network":{"allowOut":["192.168.1.1"]}}`, 400, ""},
	} {
		code, b := e.do(t, "POST", tc.path, tc.key, strings.NewReader(tc.body))
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, b, tc.want)
			continue
		}
		if tc.code != "" {
			if got := errorCode(t, b); got != tc.code {
				t.Errorf("%s: code %q, want %q", tc.name, got, tc.code)
			}
		} else {
			e2bError(t, code, b)
		}
	}
	if n := e.agent.Creates(); n != 0 {
		t.Fatalf("%d refused creates reached the host", n)
	}

	// A team limited to one live capsule: the second create is 429 on
	// both surfaces.
	one := 1
	if err := e.store.SetTeamLimits(context.Background(), "team_a", store.TeamLimits{Capsules: &one}); err != nil {
		t.Fatal(err)
	}
	e.e2bCreate(t, e2bKey, "/v2/sandboxes", `{"templateID":"base"}`)
	code, b := e.do(t, "POST", "/v1/capsules", e.keyA, strings.NewReader(`{}`))
	if code != http.StatusTooManyRequests || errorCode(t, b) != "resource_exhausted" {
		t.Errorf("native create over the quota: %d %s, want 429 resource_exhausted", code, b)
	}
	code, b = e.do(t, "POST", "/v2/sandboxes", e2bKey, strings.NewReader(`{"templateID":"base"}`))
	if code != http.StatusTooManyRequests {
		t.Errorf("E2B create over the quota: %d %s, want 429", code, b)
	} else {
		e2bError(t, code, b)
	}
	// A refused create is refused before any work starts in the
	// background: the host has seen at most the one admitted create, now
	// and later.
	if n := e.agent.Creates(); n > 1 {
		t.Fatalf("%d creates reached the host after one admitted and two refused", n)
	}
	// Another team is not limited by it.
	code, b = e.do(t, "POST", "/v1/capsules", e.keyB, strings.NewReader(`{}`))
	if code != http.StatusAccepted {
		t.Errorf("create of another team: %d %s", code, b)
	}
	// The admitted creates reach the host in the background (202).
	deadline := time.Now().Add(10 * time.Second)
	for e.agent.Creates() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := e.agent.Creates(); n != 2 {
		t.Fatalf("%d creates reached the host, want 2", n)
	}
}

// TestKeyLimit: a team at MaxKeysPerTeam (here 3, with the one the test
// env made) gets 429 resource_exhausted for another key, until it deletes
// one; another team is not limited by it.
func TestKeyLimit(t *testing.T) {
	e := newEnv(t, withConfig(func(c *server.Config) { c.MaxKeysPerTeam = 3 }))
	var ids []string
	for i := range 2 {
		code, b := e.do(t, "POST", "/v1/keys", e.keyA, strings.NewReader(`{"name":"k"}`))
		var k nestbox.APIKeyCreated
		if json.Unmarshal(b, &k); code != http.StatusCreated {
			t.Fatalf("key %d of 3: %d %s", i+2, code, b)
		}
		ids = append(ids, k.ID)
	}
	code, b := e.do(t, "POST", "/v1/keys", e.keyA, strings.NewReader(`{"name":"k"}`))
	if code != http.StatusTooManyRequests || errorCode(t, b) != "resource_exhausted" {
		t.Fatalf("key 4 of 3: %d %s, want 429 resource_exhausted", code, b)
	}
	if code, b := e.do(t, "POST", "/v1/keys", e.keyB, strings.NewReader(`{"name":"k"}`)); code != http.StatusCreated {
		t.Errorf("key 2 of another team: %d %s", code, b)
	}
	if code, b := e.do(t, "DELETE", "/v1/keys/"+ids[0], e.keyA, nil); code != http.StatusNoContent {
		t.Fatalf("delete a key: %d %s", code, b)
	}
	if code, b := e.do(t, "POST", "/v1/keys", e.keyA, strings.NewReader(`{"name":"k"}`)); code != http.StatusCreated {
		t.Errorf("a key after deleting one at the limit: %d %s", code, b)
	}
}
