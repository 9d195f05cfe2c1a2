package server_test

import (
	"testing"

	"nestbox.dev"
)

// TestAdminTeamLimits: a platform admin reads and replaces a team's own
// limits; they hold from the team's next create (a limit of 1, then -1 for
// none), a field left out goes back to the default, bad values and unknown
// or deleted teams are refused, non-admins get 403, and each change is one
// admin entry with every field's value.
func TestAdminTeamLimits(t *testing.T) {
	box := &outbox{}
	e := newEnv(t, withAccounts(box, nil))
	ada := e.signUpAndLogIn(t, box, "ada@example.com") // the first: admin
	const path = "/v1/admin/teams/team_b/limits"
	type limits struct {
		TeamID    string `json:"team_id"`
		Capsules  *int   `json:"capsules"`
		VCPUs     *int   `json:"vcpus"`
		MemoryMB  *int   `json:"memory_mb"`
		Snapshots *int   `json:"snapshots"`
		DiskMB    *int   `json:"disk_mb"`
	}
	get := func() limits {
		t.Helper()
		var l limits
		if code, b := e.call(t, "GET", path, ada.AccessToken, "", &l); code != 200 {
			t.Fatalf("GET limits: %d %s", code, b)
		}
		return l
	}
	put := func(body string) limits {
		t.Helper()
		var l limits
		if code, b := e.call(t, "PUT", path, ada.AccessToken, body, &l); code != 200 {
			t.Fatalf("PUT limits %s: %d %s", body, code, b)
		}
		if g := get(); g.Capsules == nil != (l.Capsules == nil) || g.Capsules != nil && *g.Capsules != *l.Capsules {
			t.Errorf("GET after PUT %s = %+v, want the PUT's answer %+v", body, g, l)
		}
		return l
	}
	if l := get(); l.TeamID != "team_b" || l.Capsules != nil || l.VCPUs != nil || l.MemoryMB != nil || l.Snapshots != nil || l.DiskMB != nil {
		t.Fatalf("a team's limits before any is set = %+v, want every one null (the defaults)", l)
	}

	if l := put(`{"capsules":1,"memory_mb":4096}`); l.Capsules == nil || *l.Capsules != 1 || l.MemoryMB == nil || *l.MemoryMB != 4096 || l.VCPUs != nil {
		t.Errorf("PUT capsules 1, memory 4096 answers %+v", l)
	}
	e.create(t, e.keyB, nestbox.CreateCapsuleRequest{})
	if code, b := e.call(t, "POST", "/v1/capsules", e.keyB, `{}`, nil); code != 429 || errorCode(t, b) != "resource_exhausted" {
		t.Errorf("team_b's second capsule under a limit of 1: %d %s, want 429 resource_exhausted", code, b)
	}
	e.create(t, e.keyA, nestbox.CreateCapsuleRequest{}) // another team's limit is not team_a's
	e.create(t, e.keyA, nestbox.CreateCapsuleRequest{})

	if l := put(`{"capsules":-1}`); l.Capsules == nil || *l.Capsules != -1 || l.MemoryMB != nil {
		t.Errorf("PUT capsules -1 answers %+v, want -1 and memory back to the default", l)
	}
	e.create(t, e.keyB, nestbox.CreateCapsuleRequest{}) // no limit now
	if l := put(`{}`); l.Capsules != nil {
		t.Errorf("PUT {} answers %+v, want every limit the default", l)
	}

	for _, body := range []string{`{"capsules":0}`, `{"vcpus":-2}`, `{"disk_mb":2000000000}`, `{"capsules":"10"}`, `{"colour":1}`, ``} {
		if code, b := e.call(t, "PUT", path, ada.AccessToken, body, nil); code != 400 || errorCode(t, b) != "invalid_argument" {
			t.Errorf("PUT %q: %d %s, want 400 invalid_argument", body, code, b)
		}
	}
	if code, b := e.call(t, "DELETE", "/v1/admin/teams/team_a", ada.AccessToken, "", nil); code != 200 {
		t.Fatalf("delete team_a: %d %s", code, b)
	}
	for _, team := range []string{"team_nope", "team_a"} { // unknown, deleted
		for _, m := range []string{"GET", "PUT"} {
			if code, b := e.call(t, m, "/v1/admin/teams/"+team+"/limits", ada.AccessToken, `{"capsules":3}`, nil); code != 404 || errorCode(t, b) != "not_found" {
				t.Errorf("%s the limits of %s: %d %s, want 404", m, team, code, b)
			}
		}
	}
	for _, m := range []string{"GET", "PUT"} {
		if code, b := e.call(t, m, path, e.keyB, `{"capsules":100}`, nil); code != 403 || errorCode(t, b) != "permission_denied" {
			t.Errorf("%s its own limits with team_b's key: %d %s, want 403", m, code, b)
		}
	}

	es := e.auditLog(t, "/v1/admin/audit-logs?resource_type=team&action=set_limits", ada.AccessToken, 100)
	var ok, failed []nestbox.AuditEntry
	for _, x := range es {
		if x.Status == nestbox.AuditSuccess {
			ok = append(ok, x)
		} else {
			failed = append(failed, x)
		}
	}
	if len(ok) != 3 || len(failed) != 2 {
		t.Fatalf("team.set_limits entries = %+v, want 3 successes (team_b) and 2 failures (team_nope, deleted team_a)", es)
	}
	want := []map[string]string{
		{"capsules": "default", "vcpus": "default", "memory_mb": "default", "snapshots": "default", "disk_mb": "default"},
		{"capsules": "-1", "vcpus": "default", "memory_mb": "default", "snapshots": "default", "disk_mb": "default"},
		{"capsules": "1", "vcpus": "default", "memory_mb": "4096", "snapshots": "default", "disk_mb": "default"},
	}
	for i, x := range ok {
		if x.Scope != nestbox.AuditScopeAdmin || x.ResourceID != "team_b" || x.Actor.ID != ada.UserID {
			t.Errorf("entry %d: %+v, want an admin entry about team_b by ada", i, x)
		}
		for k, v := range want[i] {
			if x.Metadata[k] != v {
				t.Errorf("entry %d's metadata %v, want %s %s", i, x.Metadata, k, v)
			}
		}
	}
	for _, x := range failed {
		if x.Metadata["error"] != "not_found" {
			t.Errorf("failed entry %+v, want error not_found", x)
		}
	}
}
