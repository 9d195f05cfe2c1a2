package server_test

import (
	"fmt"
	"testing"

	"nestbox.dev"
)

// TestTeamFlow: an owner invites by email; the invitee signs up, accepts
// with its session, switches to the team and works in its capsules only;
// roles decide who may mint keys, change roles and remove members; the
// owner stays.
func TestTeamFlow(t *testing.T) {
	box := &outbox{}
	e := newEnv(t, withAccounts(box, nil))
	olga := e.signUpAndLogIn(t, box, "olga@example.com")
	var tm struct{ ID string }
	if code, b := e.call(t, "POST", "/v1/teams", olga.AccessToken, `{"name":"Shared"}`, &tm); code != 201 {
		t.Fatalf("create team: %d %s", code, b)
	}
	inviteAs := func(cred, email, role string) (int, []byte) {
		return e.call(t, "POST", "/v1/teams/"+tm.ID+"/invitations", cred, fmt.Sprintf(`{"email":%q,"role":%q}`, email, role), nil)
	}
	if code, b := inviteAs(olga.AccessToken, "mia@example.com", "member"); code != 201 {
		t.Fatalf("invite: %d %s", code, b)
	}
	inviteTok := box.token(t, "mia@example.com")
	mia := e.signUpAndLogIn(t, box, "mia@example.com")
	zed := e.signUpAndLogIn(t, box, "zed@example.com")
	if code, b := e.call(t, "POST", "/v1/invitations/accept", zed.AccessToken, fmt.Sprintf(`{"token":%q}`, inviteTok), nil); code != 403 || errorCode(t, b) != "permission_denied" {
		t.Errorf("accept by another email: %d %s, want 403", code, b)
	}
	if code, b := e.call(t, "POST", "/v1/invitations/accept", mia.AccessToken, fmt.Sprintf(`{"token":%q}`, inviteTok), nil); code != 200 {
		t.Fatalf("accept: %d %s", code, b)
	}
	if code, b := e.call(t, "POST", "/v1/invitations/accept", mia.AccessToken, fmt.Sprintf(`{"token":%q}`, inviteTok), nil); code != 409 {
		t.Errorf("accept twice: %d %s, want 409", code, b)
	}

	// Olga's session acts for her own team; she switches to the shared one.
	if code, b := e.call(t, "POST", "/v1/auth/switch", olga.AccessToken, fmt.Sprintf(`{"team_id":%q}`, tm.ID), nil); code != 200 {
		t.Fatalf("switch: %d %s", code, b)
	}
	var c nestbox.Capsule
	if code, b := e.call(t, "POST", "/v1/capsules", olga.AccessToken, `{}`, &c); code != 202 || c.TeamID != tm.ID {
		t.Fatalf("create in the shared team: %d %s (team %s)", code, b, c.TeamID)
	}
	// Mia sees it once she switches; Zed never can, nor switch there.
	if code, _ := e.call(t, "GET", "/v1/capsules/"+c.ID, mia.AccessToken, "", nil); code != 404 {
		t.Errorf("mia before switching: %d, want 404", code)
	}
	if code, b := e.call(t, "POST", "/v1/auth/switch", mia.AccessToken, fmt.Sprintf(`{"team_id":%q}`, tm.ID), nil); code != 200 {
		t.Fatalf("mia switches: %d %s", code, b)
	}
	if code, _ := e.call(t, "GET", "/v1/capsules/"+c.ID, mia.AccessToken, "", nil); code != 200 {
		t.Errorf("mia after switching: %d, want 200", code)
	}
	if code, _ := e.call(t, "POST", "/v1/auth/switch", zed.AccessToken, fmt.Sprintf(`{"team_id":%q}`, tm.ID), nil); code != 404 {
		t.Errorf("zed switches to a team not his: %d, want 404", code)
	}
	if code, _ := e.call(t, "GET", "/v1/teams/"+tm.ID+"/members", zed.AccessToken, "", nil); code != 404 {
		t.Errorf("zed lists the members: %d, want 404", code)
	}

	// The role rule for keys: a member may not mint until the team allows it.
	if code, b := e.call(t, "POST", "/v1/keys", mia.AccessToken, `{"name":"k"}`, nil); code != 403 || errorCode(t, b) != "permission_denied" {
		t.Errorf("a member mints a key: %d %s, want 403", code, b)
	}
	// The refusal is in the team's log, as a failure by mia (docs/admin.md).
	if es := e.auditLog(t, "/v1/audit-logs?resource_type=api_key", olga.AccessToken, 100); len(es) != 1 ||
		es[0].Action != "api_key.create" || es[0].Status != nestbox.AuditFailure || es[0].Metadata["error"] != "permission_denied" ||
		es[0].Actor.ID != mia.UserID || es[0].TeamID != tm.ID {
		t.Errorf("the team's key entries after mia's refused mint = %+v, want one failed api_key.create by mia", es)
	}
	if code, _ := e.call(t, "PUT", "/v1/teams/"+tm.ID+"/settings", mia.AccessToken, `{"members_mint_keys":true}`, nil); code != 403 {
		t.Errorf("a member changes the settings: %d, want 403", code)
	}
	if code, b := e.call(t, "PUT", "/v1/teams/"+tm.ID+"/settings", olga.AccessToken, `{"members_mint_keys":true}`, nil); code != 200 {
		t.Fatalf("the owner allows members: %d %s", code, b)
	}
	var k struct{ Key string }
	if code, b := e.call(t, "POST", "/v1/keys", mia.AccessToken, `{"name":"k"}`, &k); code != 201 {
		t.Fatalf("a member mints once allowed: %d %s", code, b)
	}
	// A key acts with its maker's role: when the team forbids it again,
	// mia's key cannot mint either.
	if code, _ := e.call(t, "PUT", "/v1/teams/"+tm.ID+"/settings", olga.AccessToken, `{"members_mint_keys":false}`, nil); code != 200 {
		t.Fatal("forbid again")
	}
	if code, _ := e.call(t, "POST", "/v1/keys", k.Key, `{"name":"k2"}`, nil); code != 403 {
		t.Errorf("a member's key mints after the team forbade it: %d, want 403", code)
	}

	// Roles: a member changes none; the owner is never demoted or removed.
	if code, _ := e.call(t, "PATCH", "/v1/teams/"+tm.ID+"/members/"+olga.UserID, mia.AccessToken, `{"role":"member"}`, nil); code != 403 {
		t.Errorf("a member demotes the owner: %d, want 403", code)
	}
	if code, b := e.call(t, "PATCH", "/v1/teams/"+tm.ID+"/members/"+mia.UserID, olga.AccessToken, `{"role":"admin"}`, nil); code != 200 {
		t.Fatalf("promote mia: %d %s", code, b)
	}
	if code, b := e.call(t, "PATCH", "/v1/teams/"+tm.ID+"/members/"+olga.UserID, mia.AccessToken, `{"role":"member"}`, nil); code != 409 || errorCode(t, b) != "conflict" {
		t.Errorf("an admin demotes the owner: %d %s, want 409", code, b)
	}
	if code, _ := e.call(t, "DELETE", "/v1/teams/"+tm.ID+"/members/"+olga.UserID, mia.AccessToken, "", nil); code != 409 {
		t.Errorf("an admin removes the owner: %d, want 409", code)
	}
	if code, _ := e.call(t, "PATCH", "/v1/teams/"+tm.ID+"/members/"+mia.UserID, olga.AccessToken, `{"role":"owner"}`, nil); code != 400 {
		t.Errorf("make someone owner: %d, want 400", code)
	}
	// Removing mia ends her session in the team.
	if code, b := e.call(t, "DELETE", "/v1/teams/"+tm.ID+"/members/"+mia.UserID, olga.AccessToken, "", nil); code != 204 {
		t.Fatalf("remove mia: %d %s", code, b)
	}
	if code, _ := e.call(t, "GET", "/v1/capsules", mia.AccessToken, "", nil); code != 401 {
		t.Errorf("a removed member's session: %d, want 401", code)
	}
	// Handing the team over: the owner alone may, to a member; the
	// former owner is an admin and may then leave.
	if code, b := e.call(t, "PUT", "/v1/teams/"+tm.ID+"/owner", olga.AccessToken, fmt.Sprintf(`{"user_id":%q}`, zed.UserID), nil); code != 404 {
		t.Errorf("hand over to a non-member: %d %s, want 404", code, b)
	}
	e.call(t, "POST", "/v1/teams/"+tm.ID+"/invitations", olga.AccessToken, `{"email":"zed@example.com","role":"admin"}`, nil)
	if code, b := e.call(t, "POST", "/v1/invitations/accept", zed.AccessToken, fmt.Sprintf(`{"token":%q}`, box.token(t, "zed@example.com")), nil); code != 200 {
		t.Fatalf("zed accepts: %d %s", code, b)
	}
	if code, _ := e.call(t, "PUT", "/v1/teams/"+tm.ID+"/owner", zed.AccessToken, fmt.Sprintf(`{"user_id":%q}`, zed.UserID), nil); code != 403 {
		t.Errorf("an admin takes the team: %d, want 403", code)
	}
	if code, b := e.call(t, "PUT", "/v1/teams/"+tm.ID+"/owner", olga.AccessToken, fmt.Sprintf(`{"user_id":%q}`, zed.UserID), nil); code != 200 {
		t.Fatalf("hand over to zed: %d %s", code, b)
	}
	if code, b := e.call(t, "DELETE", "/v1/teams/"+tm.ID+"/members/"+olga.UserID, olga.AccessToken, "", nil); code != 204 {
		t.Fatalf("the former owner leaves: %d %s", code, b)
	}
	var list struct {
		Members []struct {
			UserID string `json:"user_id"`
			Role   string `json:"role"`
		} `json:"members"`
	}
	if code, _ := e.call(t, "GET", "/v1/teams/"+tm.ID+"/members", zed.AccessToken, "", &list); code != 200 || len(list.Members) != 1 || list.Members[0].UserID != zed.UserID || list.Members[0].Role != "owner" {
		t.Errorf("members at the end: %d %+v", code, list)
	}
}
