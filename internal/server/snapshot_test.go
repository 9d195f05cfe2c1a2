package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"nestbox.dev"
	"nestbox.dev/internal/store"
)

// snapshot takes a snapshot of capsule id with body and waits for it to be
// ready (201 with ?wait=true).
func (e *env) snapshot(t *testing.T, key, id, body string) nestbox.Snapshot {
	t.Helper()
	code, b := e.do(t, "POST", "/v1/capsules/"+id+"/snapshots?wait=true&timeout=20s", key, strings.NewReader(body))
	var sn nestbox.Snapshot
	if err := json.Unmarshal(b, &sn); err != nil || code != http.StatusCreated || sn.Status != nestbox.SnapshotReady {
		t.Fatalf("snapshot %s %s: %d %s, want 201 ready", id, body, code, b)
	}
	return sn
}

// TestSnapshotRoutes: a snapshot answers 202 creating (201 ready with
// ?wait=true), is listed, filtered, paged and fetched by ID or name, starts
// capsules where a create names a template, and is deleted; bad input and
// conflicts get stable codes; another team gets 404 from every route.
func TestSnapshotRoutes(t *testing.T) {
	e := newEnv(t)
	c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
	code, body := e.do(t, "POST", "/v1/capsules/"+c.ID+"/snapshots", e.keyA, strings.NewReader(`{"name":"first"}`))
	var sn nestbox.Snapshot
	if err := json.Unmarshal(body, &sn); err != nil || code != http.StatusAccepted || sn.Status != nestbox.SnapshotCreating || sn.Name != "first:default" || sn.CapsuleID != c.ID {
		t.Fatalf("snapshot: %d %s, want 202 creating first:default", code, body)
	}
	code, body = e.do(t, "GET", "/v1/snapshots/first?wait=true&timeout=20s", e.keyA, nil)
	if json.Unmarshal(body, &sn); code != 200 || sn.Status != nestbox.SnapshotReady {
		t.Fatalf("get first ?wait=true: %d %s, want 200 ready", code, body)
	}
	second := e.snapshot(t, e.keyA, c.ID, `{"name":"second:v2","pause":false}`)
	third := e.snapshot(t, e.keyA, c.ID, ``)

	var list nestbox.SnapshotList
	code, body = e.do(t, "GET", "/v1/snapshots?limit=2", e.keyA, nil)
	if json.Unmarshal(body, &list); code != 200 || len(list.Snapshots) != 2 || list.Snapshots[0].ID != third.ID || list.NextCursor == "" {
		t.Fatalf("list ?limit=2: %d %s, want the 2 newest and a cursor", code, body)
	}
	code, body = e.do(t, "GET", "/v1/snapshots?limit=2&cursor="+list.NextCursor, e.keyA, nil)
	list = nestbox.SnapshotList{}
	if json.Unmarshal(body, &list); code != 200 || len(list.Snapshots) != 1 || list.Snapshots[0].ID != sn.ID || list.NextCursor != "" {
		t.Fatalf("list page 2: %d %s, want the oldest and no cursor", code, body)
	}
	for q, want := range map[string]int{"name=second:v2": 1, "name=second": 0, "capsule_id=" + c.ID: 3, "capsule_id=zzzzzzzzzzzzzzzzzzzz": 0} {
		list = nestbox.SnapshotList{}
		code, body = e.do(t, "GET", "/v1/snapshots?"+q, e.keyA, nil)
		if json.Unmarshal(body, &list); code != 200 || len(list.Snapshots) != want {
			t.Errorf("list ?%s: %d %s, want %d", q, code, body, want)
		}
	}
	code, body = e.do(t, "GET", "/v1/snapshots", e.keyB, nil)
	if list = (nestbox.SnapshotList{}); json.Unmarshal(body, &list) != nil || code != 200 || len(list.Snapshots) != 0 || list.Snapshots == nil {
		t.Errorf("another team's list: %d %s, want 200 with an empty list", code, body)
	}

	// A capsule from the snapshot, by name where a template goes.
	code, body = e.do(t, "POST", "/v1/capsules", e.keyA, strings.NewReader(`{"template":"second:v2"}`))
	var child nestbox.Capsule
	if json.Unmarshal(body, &child); code != 202 || child.SnapshotID != second.ID {
		t.Fatalf("create from second:v2: %d %s, want 202 with its snapshot_id", code, body)
	}
	code, body = e.do(t, "POST", "/v1/capsules", e.keyB, strings.NewReader(`{"template":"`+second.ID+`"}`))
	if code != 404 || errorCode(t, body) != "not_found" {
		t.Errorf("another team creates from the snapshot: %d %s, want 404", code, body)
	}

	paused := e.paused(t, e.keyA, nestbox.CreateCapsuleRequest{})
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		errCode                  string
	}{
		{"bad name", "POST", "/v1/capsules/" + c.ID + "/snapshots", `{"name":"a b"}`, 400, "invalid_argument"},
		{"unknown field", "POST", "/v1/capsules/" + c.ID + "/snapshots", `{"nam":"x"}`, 400, "invalid_argument"},
		{"bad wait", "POST", "/v1/capsules/" + c.ID + "/snapshots?wait=maybe", `{}`, 400, "invalid_argument"},
		{"taken name", "POST", "/v1/capsules/" + c.ID + "/snapshots", `{"name":"first"}`, 409, "already_exists"},
		{"paused capsule", "POST", "/v1/capsules/" + paused.ID + "/snapshots", `{}`, 409, "conflict"},
		{"unknown capsule", "POST", "/v1/capsules/zzzzzzzzzzzzzzzzzzzz/snapshots", `{}`, 404, "not_found"},
		{"another team's capsule", "POST", "/v1/capsules/" + c.ID + "/snapshots#b", `{}`, 404, "not_found"},
		{"bad limit", "GET", "/v1/snapshots?limit=0", "", 400, "invalid_argument"},
		{"big limit", "GET", "/v1/snapshots?limit=101", "", 400, "invalid_argument"},
		{"bad cursor", "GET", "/v1/snapshots?cursor=x", "", 400, "invalid_argument"},
		{"unknown snapshot", "GET", "/v1/snapshots/nope", "", 404, "not_found"},
		{"another team's get", "GET", "/v1/snapshots/" + sn.ID + "#b", "", 404, "not_found"},
		{"another team's delete", "DELETE", "/v1/snapshots/" + sn.ID + "#b", "", 404, "not_found"},
		{"other sizes", "POST", "/v1/capsules", `{"template":"first","vcpus":2}`, 400, "invalid_argument"},
		{"template from unknown", "POST", "/v1/templates", `{"name":"t1","from_snapshot":"nope"}`, 404, "not_found"},
		{"template without snapshot", "POST", "/v1/templates", `{"name":"t1"}`, 400, "invalid_argument"},
		{"template bad name", "POST", "/v1/templates", `{"name":"T 1","from_snapshot":"first"}`, 400, "invalid_argument"},
		{"template of a host's name", "POST", "/v1/templates", `{"name":"base","from_snapshot":"first"}`, 409, "already_exists"},
		{"delete a host's template", "DELETE", "/v1/templates/base", "", 409, "conflict"},
		{"delete an unknown template", "DELETE", "/v1/templates/nope", "", 404, "not_found"},
	} {
		key := e.keyA
		path, other := strings.CutSuffix(tc.path, "#b")
		if other {
			key = e.keyB
		}
		var rd *strings.Reader
		if tc.body != "" {
			rd = strings.NewReader(tc.body)
		}
		var code int
		if rd != nil {
			code, body = e.do(t, tc.method, path, key, rd)
		} else {
			code, body = e.do(t, tc.method, path, key, nil)
		}
		if code != tc.code || errorCode(t, body) != tc.errCode {
			t.Errorf("%s: %d %s, want %d %s", tc.name, code, body, tc.code, tc.errCode)
		}
	}

	// A template from a snapshot: listed for its team only; the snapshot
	// cannot be deleted before the template.
	code, body = e.do(t, "POST", "/v1/templates", e.keyA, strings.NewReader(`{"name":"my-env","from_snapshot":"first"}`))
	var tpl nestbox.Template
	if json.Unmarshal(body, &tpl); code != 201 || tpl.Name != "my-env" || tpl.SnapshotID != sn.ID {
		t.Fatalf("make template my-env: %d %s", code, body)
	}
	var tl nestbox.TemplateList
	code, body = e.do(t, "GET", "/v1/templates", e.keyA, nil)
	if json.Unmarshal(body, &tl); code != 200 || !hasTemplate(tl, "my-env") || !hasTemplate(tl, "base") {
		t.Errorf("templates: %d %s, want base and my-env", code, body)
	}
	tl = nestbox.TemplateList{}
	code, body = e.do(t, "GET", "/v1/templates", e.keyB, nil)
	if json.Unmarshal(body, &tl); code != 200 || hasTemplate(tl, "my-env") {
		t.Errorf("another team's templates: %d %s, want no my-env", code, body)
	}
	code, body = e.do(t, "POST", "/v1/capsules?", e.keyA, strings.NewReader(`{"template":"my-env"}`))
	if json.Unmarshal(body, &child); code != 202 || child.SnapshotID != sn.ID {
		t.Errorf("create from template my-env: %d %s, want 202 from %s", code, body, sn.ID)
	}
	if code, body = e.do(t, "DELETE", "/v1/snapshots/first", e.keyA, nil); code != 409 || errorCode(t, body) != "conflict" {
		t.Errorf("delete a template's snapshot: %d %s, want 409 conflict", code, body)
	}
	if code, body = e.do(t, "DELETE", "/v1/templates/my-env", e.keyA, nil); code != 204 {
		t.Fatalf("delete template my-env: %d %s", code, body)
	}
	if code, body = e.do(t, "DELETE", "/v1/snapshots/first", e.keyA, nil); code != 204 {
		t.Errorf("delete first: %d %s, want 204", code, body)
	}
	if code, _ = e.do(t, "GET", "/v1/snapshots/"+sn.ID, e.keyA, nil); code != 404 {
		t.Errorf("get a deleted snapshot: %d, want 404", code)
	}
	if e.agent.HasSnapshot(sn.ID) {
		t.Error("the host keeps the deleted snapshot")
	}
}

func hasTemplate(l nestbox.TemplateList, name string) bool {
	for _, t := range l.Templates {
		if t.Name == name {
			return true
		}
	}
	return false
}

// TestSnapshotLimitRoute: the team's snapshot limit is 429
// resource_exhausted, and nothing is recorded.
func TestSnapshotLimitRoute(t *testing.T) {
	e := newEnv(t)
	c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
	one := 1
	if err := e.store.SetTeamLimits(t.Context(), "team_a", store.TeamLimits{Snapshots: &one}); err != nil {
		t.Fatal(err)
	}
	e.snapshot(t, e.keyA, c.ID, `{}`)
	code, body := e.do(t, "POST", "/v1/capsules/"+c.ID+"/snapshots", e.keyA, strings.NewReader(`{}`))
	if code != 429 || errorCode(t, body) != "resource_exhausted" {
		t.Errorf("a second snapshot under a limit of 1: %d %s, want 429 resource_exhausted", code, body)
	}
	if got := e.agent.SnapshotCount(); got != 1 {
		t.Errorf("the host keeps %d snapshots, want 1", got)
	}
}
