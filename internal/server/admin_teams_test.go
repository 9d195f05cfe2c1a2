package server_test

import (
	"testing"
	"time"

	"nestbox.dev"
)

// TestAdminTeamActions: a platform admin toggles a team's BYOC flag
// (idempotently, shown in the list) and soft-deletes the team: its
// capsules are destroyed, its key and its member's session stop working,
// a second delete changes nothing, the platform team cannot be deleted,
// and each change is one admin-scope audit entry. Non-admins get 403.
func TestAdminTeamActions(t *testing.T) {
	box := &outbox{}
	e := newEnv(t, withAccounts(box, nil))
	ada := e.signUpAndLogIn(t, box, "ada@example.com") // the first: admin
	bob := e.signUpAndLogIn(t, box, "bob@example.com")
	var c nestbox.Capsule
	if code, b := e.call(t, "POST", "/v1/capsules", bob.AccessToken, `{}`, &c); code != 202 {
		t.Fatalf("create: %d %s", code, b)
	}
	var k struct{ Key string }
	if code, b := e.call(t, "POST", "/v1/keys", bob.AccessToken, `{"name":"bob's"}`, &k); code != 201 {
		t.Fatalf("key: %d %s", code, b)
	}
	// Used once, so that the control plane's key cache holds it.
	if code, b := e.call(t, "GET", "/v1/capsules", k.Key, "", nil); code != 200 {
		t.Fatalf("bob's key: %d %s", code, b)
	}
	byoc := "/v1/admin/teams/" + bob.TeamID + "/byoc"
	del := "/v1/admin/teams/" + bob.TeamID

	for _, tc := range []struct {
		method, path, body string
	}{{"PUT", byoc, `{"byoc":true}`}, {"DELETE", del, ""}} {
		if code, _ := e.call(t, tc.method, tc.path, bob.AccessToken, tc.body, nil); code != 403 {
			t.Errorf("%s %s by a non-admin: %d, want 403", tc.method, tc.path, code)
		}
	}

	// BYOC: set, set again (no change), bad input, unknown team.
	var got struct {
		BYOC    bool `json:"byoc"`
		Changed bool `json:"changed"`
	}
	for i, want := range []bool{true, false} {
		if code, b := e.call(t, "PUT", byoc, ada.AccessToken, `{"byoc":true}`, &got); code != 200 || !got.BYOC || got.Changed != want {
			t.Errorf("set BYOC, call %d: %d %s, want changed %v", i+1, code, b, want)
		}
	}
	for _, body := range []string{`{}`, `{"byoc":"yes"}`} {
		if code, b := e.call(t, "PUT", byoc, ada.AccessToken, body, nil); code != 400 || errorCode(t, b) != "invalid_argument" {
			t.Errorf("set BYOC with %s: %d %s, want 400 invalid_argument", body, code, b)
		}
	}
	if code, _ := e.call(t, "PUT", "/v1/admin/teams/team_nope/byoc", ada.AccessToken, `{"byoc":true}`, nil); code != 404 {
		t.Errorf("set BYOC of an unknown team: %d, want 404", code)
	}
	if tm := e.adminTeam(t, ada.AccessToken, bob.TeamID); !tm.BYOC || tm.DeletedAt != nil {
		t.Errorf("bob's team in the list: %+v, want BYOC and not deleted", tm)
	}

	// Delete.
	var d struct {
		Changed           bool      `json:"changed"`
		DeletedAt         time.Time `json:"deleted_at"`
		KeysRevoked       int       `json:"keys_revoked"`
		SessionsEnded     int       `json:"sessions_ended"`
		CapsulesDestroyed int       `json:"capsules_destroyed"`
	}
	if code, b := e.call(t, "DELETE", del, ada.AccessToken, "", &d); code != 200 || !d.Changed || d.DeletedAt.IsZero() ||
		d.KeysRevoked != 1 || d.SessionsEnded != 1 || d.CapsulesDestroyed != 1 {
		t.Fatalf("delete bob's team: %d %s", code, b)
	}
	for name, cred := range map[string]string{"session": bob.AccessToken, "key": k.Key} {
		if code, _ := e.call(t, "GET", "/v1/capsules", cred, "", nil); code != 401 {
			t.Errorf("bob's %s after the delete: %d, want 401", name, code)
		}
	}
	if code, _ := e.call(t, "POST", "/v1/auth/login", "", `{"email":"bob@example.com","password":"long enough"}`, nil); code == 200 {
		t.Error("bob logs in to the deleted team, his only one")
	}
	if st, err := e.store.GetCapsule(t.Context(), c.ID); err != nil || (!st.Status.Final() && st.Status != nestbox.StatusStopping) {
		t.Errorf("bob's capsule after the delete: %s, %v; want stopping or stopped", st.Status, err)
	}
	first := d.DeletedAt
	if code, b := e.call(t, "DELETE", del, ada.AccessToken, "", &d); code != 200 || d.Changed || !d.DeletedAt.Equal(first) || d.CapsulesDestroyed != 0 {
		t.Errorf("delete bob's team again: %d %s, want 200, no change, the first time", code, b)
	}
	if tm := e.adminTeam(t, ada.AccessToken, bob.TeamID); tm.DeletedAt == nil || !tm.DeletedAt.Equal(first) {
		t.Errorf("bob's team in the list: %+v, want deleted at %v", tm, first)
	}
	if code, _ := e.call(t, "PUT", byoc, ada.AccessToken, `{"byoc":false}`, nil); code != 404 {
		t.Errorf("set BYOC of the deleted team: %d, want 404", code)
	}
	if code, b := e.call(t, "DELETE", "/v1/admin/teams/team_admin", ada.AccessToken, "", nil); code != 409 || errorCode(t, b) != "conflict" {
		t.Errorf("delete the platform team: %d %s, want 409 conflict", code, b)
	}
	if code, _ := e.call(t, "DELETE", "/v1/admin/teams/team_nope", ada.AccessToken, "", nil); code != 404 {
		t.Errorf("delete an unknown team: %d, want 404", code)
	}

	// One entry per change (and per refusal), none for what changed
	// nothing.
	count := map[string]int{}
	for _, en := range e.auditLog(t, "/v1/admin/audit-logs?scope=admin&resource_type=team", ada.AccessToken, 100) {
		count[en.Action+" "+en.ResourceID+" "+string(en.Status)]++
		if en.Actor.ID != ada.UserID {
			t.Errorf("entry %s: actor %+v, want ada", en.Action, en.Actor)
		}
	}
	want := map[string]int{
		"team.enable_byoc " + bob.TeamID + " success":  1,
		"team.enable_byoc team_nope failure":           1,
		"team.disable_byoc " + bob.TeamID + " failure": 1,
		"team.delete " + bob.TeamID + " success":       1,
		"team.delete team_admin failure":               1,
		"team.delete team_nope failure":                1,
	}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("audit entries %q: %d, want %d (all: %v)", k, count[k], n, count)
		}
	}
	if len(count) != len(want) {
		t.Errorf("audit entries: %v, want exactly %v", count, want)
	}
}

type adminTeam struct {
	ID        string     `json:"id"`
	BYOC      bool       `json:"byoc"`
	DeletedAt *time.Time `json:"deleted_at"`
}

// adminTeam finds team id in GET /v1/admin/teams.
func (e *env) adminTeam(t *testing.T, cred, id string) adminTeam {
	t.Helper()
	var list struct {
		Teams []adminTeam `json:"teams"`
	}
	if code, b := e.call(t, "GET", "/v1/admin/teams?limit=1000", cred, "", &list); code != 200 {
		t.Fatalf("list teams: %d %s", code, b)
	}
	for _, tm := range list.Teams {
		if tm.ID == id {
			return tm
		}
	}
	t.Fatalf("team %s is not in the list", id)
	return adminTeam{}
}
