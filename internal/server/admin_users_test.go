package server_test

import (
	"testing"

	"nestbox.dev"
)

// TestAdminUserStatus: deactivating a user ends its sessions, revokes the
// keys it made and destroys the capsules of the teams it owns; the list
// shows it; reactivating lets it log in again.
func TestAdminUserStatus(t *testing.T) {
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
	if code, _ := e.call(t, "PUT", "/v1/admin/users/"+ada.UserID+"/status", bob.AccessToken, `{"status":"disabled"}`, nil); code != 403 {
		t.Errorf("a non-admin deactivates the admin: %d, want 403", code)
	}
	if code, b := e.call(t, "PUT", "/v1/admin/users/"+bob.UserID+"/status", ada.AccessToken, `{"status":"deleted"}`, nil); code != 400 {
		t.Errorf("status deleted: %d %s, want 400", code, b)
	}
	var got struct {
		Status          string `json:"status"`
		KeysRevoked     int    `json:"keys_revoked"`
		CapsulesStopped int    `json:"capsules_stopped"`
	}
	if code, b := e.call(t, "PUT", "/v1/admin/users/"+bob.UserID+"/status", ada.AccessToken, `{"status":"disabled"}`, &got); code != 200 || got.KeysRevoked != 1 || got.CapsulesStopped != 1 {
		t.Fatalf("deactivate bob: %d %s", code, b)
	}
	for name, cred := range map[string]string{"session": bob.AccessToken, "key": k.Key} {
		if code, _ := e.call(t, "GET", "/v1/capsules", cred, "", nil); code != 401 {
			t.Errorf("bob's %s after deactivation: %d, want 401", name, code)
		}
	}
	if code, _ := e.call(t, "POST", "/v1/auth/login", "", `{"email":"bob@example.com","password":"long enough"}`, nil); code != 401 {
		t.Errorf("bob logs in while disabled: %d, want 401", code)
	}
	st, err := e.store.GetCapsule(t.Context(), c.ID)
	if err != nil || (!st.Status.Final() && st.Status != nestbox.StatusStopping) {
		t.Errorf("bob's capsule after deactivation: %s, %v; want stopping or stopped", st.Status, err)
	}
	var list struct {
		Users []struct {
			ID, Status string
		} `json:"users"`
	}
	if code, b := e.call(t, "GET", "/v1/admin/users?limit=1000", ada.AccessToken, "", &list); code != 200 {
		t.Fatalf("list users: %d %s", code, b)
	}
	found := false
	for _, u := range list.Users {
		if u.ID == bob.UserID {
			found = u.Status == "disabled"
		}
	}
	if !found {
		t.Errorf("the list does not show bob disabled: %+v", list.Users)
	}
	var teams struct {
		Teams []struct {
			ID      string `json:"id"`
			OwnerID string `json:"owner_id"`
			Members int    `json:"members"`
		} `json:"teams"`
		Next string `json:"next"`
	}
	if code, b := e.call(t, "GET", "/v1/admin/teams?limit=1", ada.AccessToken, "", &teams); code != 200 || len(teams.Teams) != 1 || teams.Next == "" {
		t.Fatalf("list teams, a page of 1: %d %s", code, b)
	}
	seen := map[string]string{}
	for after := ""; ; {
		if code, b := e.call(t, "GET", "/v1/admin/teams?limit=1&after="+after, ada.AccessToken, "", &teams); code != 200 {
			t.Fatalf("list teams after %q: %d %s", after, code, b)
		}
		for _, tm := range teams.Teams {
			seen[tm.ID] = tm.OwnerID
		}
		if teams.Next == "" {
			break
		}
		after, teams.Next = teams.Next, ""
	}
	if seen[bob.TeamID] != bob.UserID || seen[ada.TeamID] != ada.UserID {
		t.Errorf("the pages of teams %v lack bob's or ada's own", seen)
	}
	if code, b := e.call(t, "GET", "/v1/admin/teams", e.keyA, "", nil); code != 403 {
		t.Errorf("a non-admin lists teams: %d %s, want 403", code, b)
	}
	if code, b := e.call(t, "GET", "/v1/admin/users?limit=0", ada.AccessToken, "", nil); code != 400 {
		t.Errorf("limit=0: %d %s, want 400", code, b)
	}
	if code, b := e.call(t, "PUT", "/v1/admin/users/"+bob.UserID+"/status", ada.AccessToken, `{"status":"active"}`, nil); code != 200 {
		t.Fatalf("reactivate: %d %s", code, b)
	}
	if code, _ := e.call(t, "POST", "/v1/auth/login", "", `{"email":"bob@example.com","password":"long enough"}`, nil); code != 200 {
		t.Errorf("bob logs in after reactivation: %d, want 200", code)
	}
}

// Deleting one's account revokes the keys one made: they would otherwise
// outlive the account, and the purge would leave them made by nobody.
func TestDeleteRevokesKeys(t *testing.T) {
	box := &outbox{}
	e := newEnv(t, withAccounts(box, nil))
	bob := e.signUpAndLogIn(t, box, "bob@example.com")
	var k struct{ Key string }
	if code, b := e.call(t, "POST", "/v1/keys", bob.AccessToken, `{"name":"bob's"}`, &k); code != 201 {
		t.Fatalf("key: %d %s", code, b)
	}
	if code, _ := e.call(t, "GET", "/v1/capsules", k.Key, "", nil); code != 200 {
		t.Fatalf("the key before: %d", code)
	}
	if code, b := e.call(t, "DELETE", "/v1/users/me", bob.AccessToken, "", nil); code != 202 {
		t.Fatalf("delete me: %d %s", code, b)
	}
	if code, _ := e.call(t, "GET", "/v1/capsules", k.Key, "", nil); code != 401 {
		t.Errorf("the key of a deleted account: %d, want 401", code)
	}
}
