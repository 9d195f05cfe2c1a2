package server_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"nestbox.dev/internal/apikey"
)

type e2bSnapshotInfo struct {
	SnapshotID string   `json:"snapshotID"`
	Names      []string `json:"names"`
}

// TestE2BSnapshots: POST /sandboxes/{id}/snapshots answers 201 with E2B's
// SnapshotInfo (the name with its tag, or "<id>:default"); GET /snapshots
// lists, filters by sandboxID and name and pages with X-Next-Token; a
// create with templateID set to either form starts a sandbox from it;
// DELETE /templates/{snapshotID} is 204, then 404; another team sees none.
func TestE2BSnapshots(t *testing.T) {
	e := newEnv(t)
	key, other := apikey.E2BForm(e.keyA), apikey.E2BForm(e.keyB)
	src := e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base"}`)
	snap := func(body string) e2bSnapshotInfo {
		t.Helper()
		code, b := e.do(t, "POST", "/sandboxes/"+src.SandboxID+"/snapshots", key, strings.NewReader(body))
		var info e2bSnapshotInfo
		if json.Unmarshal(b, &info); code != http.StatusCreated || info.SnapshotID == "" || !slices.Equal(info.Names, []string{info.SnapshotID}) {
			t.Fatalf("createSnapshot %s: %d %s, want 201 SnapshotInfo", body, code, b)
		}
		return info
	}
	named := snap(`{"name":"my-snap"}`)
	unnamed := snap(``)
	if named.SnapshotID != "my-snap:default" || !strings.HasSuffix(unnamed.SnapshotID, ":default") || len(unnamed.SnapshotID) != 20+len(":default") {
		t.Fatalf("snapshot IDs %q and %q, want my-snap:default and <id>:default", named.SnapshotID, unnamed.SnapshotID)
	}
	list := func(key, query string) ([]e2bSnapshotInfo, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", e.url+"/snapshots?"+query, nil)
		req.Header.Set("X-API-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out []e2bSnapshotInfo
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out == nil {
			t.Fatalf("GET /snapshots?%s: %d %v", query, resp.StatusCode, err)
		}
		return out, resp.Header.Get("X-Next-Token")
	}
	got, next := list(key, "limit=1")
	if len(got) != 1 || got[0].SnapshotID != unnamed.SnapshotID || next == "" {
		t.Fatalf("page 1 of 1: %v next %q, want the newest and a token", got, next)
	}
	if got, next = list(key, "limit=1&nextToken="+next); len(got) != 1 || got[0].SnapshotID != named.SnapshotID || next != "" {
		t.Fatalf("page 2 of 1: %v next %q, want the oldest and no token", got, next)
	}
	for q, want := range map[string]int{"sandboxID=" + src.SandboxID: 2, "sandboxID=zzzzzzzzzzzzzzzzzzzz": 0, "name=my-snap": 1, "name=my-snap:default": 1, "name=" + unnamed.SnapshotID: 1, "name=nope": 0} {
		if got, _ := list(key, q); len(got) != want {
			t.Errorf("GET /snapshots?%s: %v, want %d", q, got, want)
		}
	}
	if got, _ := list(other, ""); len(got) != 0 {
		t.Errorf("another team lists %v", got)
	}
	if code, b := e.do(t, "GET", "/snapshots?limit=0", key, nil); code != 400 {
		t.Errorf("limit=0: %d %s, want 400", code, b)
	} else {
		e2bError(t, 400, b)
	}

	for _, id := range []string{named.SnapshotID, "my-snap", unnamed.SnapshotID} {
		sb := e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"`+id+`","envVars":{"B":"2"}}`)
		if sb.SandboxID == src.SandboxID || sb.EnvdAccessToken == "" || sb.EnvdAccessToken == src.EnvdAccessToken || sb.TemplateID != "base" {
			t.Errorf("create from %q: %+v, want a new sandbox of template base with its own token", id, sb)
		}
	}
	if code, b := e.do(t, "POST", "/v2/sandboxes", other, strings.NewReader(`{"templateID":"`+named.SnapshotID+`"}`)); code != 404 {
		t.Errorf("another team creates from the snapshot: %d %s, want 404", code, b)
	}
	if code, b := e.do(t, "POST", "/sandboxes/"+src.SandboxID+"/snapshots", other, strings.NewReader(`{}`)); code != 404 {
		t.Errorf("another team snapshots the sandbox: %d %s, want 404", code, b)
	}
	if code, b := e.do(t, "POST", "/sandboxes/"+src.SandboxID+"/snapshots", key, strings.NewReader(`{"name":"my-snap"}`)); code != 409 {
		t.Errorf("a taken name: %d %s, want 409", code, b)
	}
	if code, b := e.do(t, "DELETE", "/templates/"+named.SnapshotID, other, nil); code != 404 {
		t.Errorf("another team deletes the snapshot: %d %s, want 404", code, b)
	}
	for _, id := range []string{named.SnapshotID, unnamed.SnapshotID} {
		if code, b := e.do(t, "DELETE", "/templates/"+id, key, nil); code != 204 {
			t.Errorf("deleteSnapshot(%s): %d %s, want 204", id, code, b)
		}
		if code, b := e.do(t, "DELETE", "/templates/"+id, key, nil); code != 404 {
			t.Errorf("deleteSnapshot(%s) again: %d %s, want 404", id, code, b)
		} else {
			e2bError(t, 404, b)
		}
	}
	if n := e.agent.SnapshotCount(); n != 0 {
		t.Errorf("the host keeps %d snapshots after the deletes", n)
	}
}

// TestE2BFork: POST /sandboxes/{id}/fork answers 201 with one result per
// fork, each a new running sandbox with its own token or the error of the
// one that failed; a paused sandbox is 409, an unknown one 404.
func TestE2BFork(t *testing.T) {
	e := newEnv(t)
	key := apikey.E2BForm(e.keyA)
	src := e.e2bCreate(t, key, "/v2/sandboxes", `{"templateID":"base"}`)
	e.agent.OnFork = func(ids []string) {
		e.agent.FailForks(map[string]error{ids[1]: connect.NewError(connect.CodeResourceExhausted, errors.New("no room"))})
	}
	code, b := e.do(t, "POST", "/sandboxes/"+src.SandboxID+"/fork", key, strings.NewReader(`{"count":3,"timeout":60}`))
	var got []struct {
		Sandbox *e2bSandbox `json:"sandbox"`
		Error   *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &got); err != nil || code != 201 || len(got) != 3 {
		t.Fatalf("fork count 3: %d %s, want 201 with 3 results", code, b)
	}
	tokens := map[string]bool{src.EnvdAccessToken: true}
	for i, r := range got {
		if i == 1 {
			if r.Sandbox != nil || r.Error == nil || r.Error.Code != 500 || r.Error.Message == "" {
				t.Errorf("fork 1: %+v, want its error", r)
			}
			continue
		}
		if r.Error != nil || r.Sandbox == nil || r.Sandbox.SandboxID == src.SandboxID || tokens[r.Sandbox.EnvdAccessToken] {
			t.Errorf("fork %d: %+v, want a new sandbox with its own token", i, r)
			continue
		}
		tokens[r.Sandbox.EnvdAccessToken] = true
	}
	e.agent.OnFork = nil
	if code, b := e.do(t, "POST", "/sandboxes/"+src.SandboxID+"/fork", apikey.E2BForm(e.keyB), nil); code != 404 {
		t.Errorf("another team forks: %d %s, want 404", code, b)
	}
	if code, b := e.do(t, "POST", "/sandboxes/"+src.SandboxID+"/fork", key, strings.NewReader(`{"count":0}`)); code != 400 {
		t.Errorf("count 0: %d %s, want 400", code, b)
	}
	if code, b := e.do(t, "POST", "/sandboxes/"+src.SandboxID+"/pause", key, nil); code != 204 {
		t.Fatalf("pause: %d %s", code, b)
	}
	if code, b := e.do(t, "POST", "/sandboxes/"+src.SandboxID+"/fork", key, nil); code != 409 {
		t.Errorf("fork of a paused sandbox: %d %s, want 409", code, b)
	} else {
		e2bError(t, 409, b)
	}
}
