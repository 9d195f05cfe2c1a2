package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"nestbox.dev"
	"nestbox.dev/internal/account"
	"nestbox.dev/internal/apikey"
	"nestbox.dev/internal/audit"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/fleet"
	"nestbox.dev/internal/server"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/team"
)

// auditLog reads every page of an audit route (path with its query) with
// cred, limit entries a page.
func (e *env) auditLog(t *testing.T, path, cred string, limit int) []nestbox.AuditEntry {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var all []nestbox.AuditEntry
	cursor := ""
	for {
		q := fmt.Sprintf("%s%slimit=%d", path, sep, limit)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var page nestbox.AuditEntryList
		if code, b := e.call(t, "GET", q, cred, "", &page); code != 200 {
			t.Fatalf("GET %s: %d %s", q, code, b)
		}
		all = append(all, page.Entries...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

func actions(es []nestbox.AuditEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Action)
	}
	return out
}

// find returns the one entry of es with action and resource ID, or fails.
func find(t *testing.T, es []nestbox.AuditEntry, action, resourceID string) nestbox.AuditEntry {
	t.Helper()
	var found []nestbox.AuditEntry
	for _, e := range es {
		if e.Action == action && e.ResourceID == resourceID {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d entries %s of %q in %v, want 1", len(found), action, resourceID, actions(es))
	}
	return found[0]
}

// TestAuditTeamActions: the team's actions through the API are recorded in
// its log, with the key as actor and scope team, once each; another team
// sees none of them; a failed action is recorded in the caller's own log
// as a failure; pages and nested filters work through the API.
func TestAuditTeamActions(t *testing.T) {
	e := newEnv(t)
	c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
	if code, b := e.do(t, "POST", "/v1/capsules/"+c.ID+"/pause?wait=true&timeout=20s", e.keyA, nil); code != 200 {
		t.Fatalf("pause: %d %s", code, b)
	}
	if code, b := e.do(t, "POST", "/v1/capsules/"+c.ID+"/resume?wait=true&timeout=20s", e.keyA, nil); code != 200 {
		t.Fatalf("resume: %d %s", code, b)
	}
	sn := e.snapshot(t, e.keyA, c.ID, `{"name":"audited"}`)
	if code, b := e.call(t, "POST", "/v1/capsules/"+c.ID+"/fork", e.keyA, `{"count":2}`, nil); code != 202 {
		t.Fatalf("fork: %d %s", code, b)
	}
	if code, b := e.do(t, "DELETE", "/v1/snapshots/"+sn.ID, e.keyA, nil); code != 204 {
		t.Fatalf("delete snapshot: %d %s", code, b)
	}
	var k nestbox.APIKeyCreated
	if code, b := e.call(t, "POST", "/v1/keys", e.keyA, `{"name":"audited key"}`, &k); code != 201 {
		t.Fatalf("create key: %d %s", code, b)
	}
	if code, b := e.do(t, "DELETE", "/v1/keys/"+k.ID, e.keyA, nil); code != 204 {
		t.Fatalf("revoke key: %d %s", code, b)
	}
	if code, b := e.do(t, "DELETE", "/v1/capsules/"+c.ID, e.keyA, nil); code != 202 {
		t.Fatalf("destroy: %d %s", code, b)
	}
	// Team B tries team A's capsule: 404, a failure in B's own log.
	if code, _ := e.do(t, "POST", "/v1/capsules/"+c.ID+"/pause", e.keyB, nil); code != 404 {
		t.Fatalf("team B pauses team A's capsule: %d, want 404", code)
	}

	es := e.auditLog(t, "/v1/audit-logs", e.keyA, 3)
	wantActions := []string{"capsule.destroy", "api_key.revoke", "api_key.create", "snapshot.delete", "capsule.fork",
		"snapshot.create", "capsule.resume", "capsule.pause", "capsule.create"}
	if got := actions(es); !slices.Equal(got, wantActions) {
		t.Fatalf("team A's log, newest first = %v, want %v", got, wantActions)
	}
	for _, x := range es {
		if _, ok := x.Metadata["error"]; ok {
			t.Errorf("successful %s has an error in its metadata: %v", x.Action, x.Metadata)
		}
		if x.Scope != nestbox.AuditScopeTeam || x.TeamID != "team_a" || x.Status != nestbox.AuditSuccess ||
			x.Actor != (nestbox.AuditActor{Type: nestbox.AuditActorAPIKey, ID: "key_team_a", Name: "test"}) {
			t.Errorf("entry %s: %+v, want team_a's key, scope team, success", x.Action, x)
		}
	}
	for _, w := range []struct{ action, id string }{
		{"capsule.create", c.ID}, {"capsule.pause", c.ID}, {"capsule.destroy", c.ID}, {"snapshot.create", sn.ID},
		{"snapshot.delete", sn.ID}, {"api_key.create", k.ID}, {"api_key.revoke", k.ID}, {"capsule.fork", c.ID},
	} {
		find(t, es, w.action, w.id)
	}
	if m := find(t, es, "capsule.fork", c.ID).Metadata; m["forks"] != "2" {
		t.Errorf("fork entry's metadata %v, want forks 2", m)
	}
	if m := find(t, es, "snapshot.create", sn.ID).Metadata; m["capsule_id"] != c.ID || m["name"] != "audited:default" {
		t.Errorf("snapshot entry's metadata %v", m)
	}

	bs := e.auditLog(t, "/v1/audit-logs", e.keyB, 100)
	if len(bs) != 1 || bs[0].Action != "capsule.pause" || bs[0].Status != nestbox.AuditFailure || bs[0].TeamID != "team_b" || bs[0].Metadata["error"] != "not_found" {
		t.Errorf("team B's log = %+v, want its one failed pause (not_found)", bs)
	}

	// Nested filters: a resource type, an action within it (in full or
	// as its verb).
	for q, want := range map[string][]string{
		"resource_type=capsule":                                              {"capsule.destroy", "capsule.fork", "capsule.resume", "capsule.pause", "capsule.create"},
		"resource_type=capsule&action=capsule.pause":                         {"capsule.pause"},
		"resource_type=api_key&action=create":                                {"api_key.create"},
		"resource_type=snapshot&actor=key_team_a":                            {"snapshot.delete", "snapshot.create"},
		"resource_type=template":                                             nil,
		"to=" + url.QueryEscape(es[len(es)-1].Time.Format(time.RFC3339Nano)): nil,
		"from=" + url.QueryEscape(es[0].Time.Format(time.RFC3339Nano)):       {"capsule.destroy"},
	} {
		if got := actions(e.auditLog(t, "/v1/audit-logs?"+q, e.keyA, 100)); !slices.Equal(got, want) {
			t.Errorf("?%s: %v, want %v", q, got, want)
		}
	}

	// Pages stay stable while new entries arrive between them.
	var first nestbox.AuditEntryList
	if code, b := e.call(t, "GET", "/v1/audit-logs?limit=4", e.keyA, "", &first); code != 200 || first.NextCursor == "" {
		t.Fatalf("first page: %d %s", code, b)
	}
	e.create(t, e.keyA, nestbox.CreateCapsuleRequest{}) // a newer entry
	rest := e.auditLog(t, "/v1/audit-logs?cursor="+url.QueryEscape(first.NextCursor), e.keyA, 4)
	if got := append(actions(first.Entries), actions(rest)...); !slices.Equal(got, wantActions) {
		t.Errorf("pages with an insert between them = %v, want %v", got, wantActions)
	}

	for _, q := range []string{
		"action=capsule.pause", // an action needs its resource type
		"resource_type=snapshot&action=capsule.pause",
		"cursor=not-a-cursor",
		"from=yesterday",
		"from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
		"limit=0", "limit=1001",
		"scope=admin",    // the team route is scope team
		"team_id=team_b", // and the caller's team
		"colour=blue",    // unknown
	} {
		code, b := e.call(t, "GET", "/v1/audit-logs?"+q, e.keyA, "", nil)
		if code != 400 || errorCode(t, b) != "invalid_argument" {
			t.Errorf("?%s: %d %s, want 400 invalid_argument", q, code, b)
		}
	}
}

// TestAuditAdminActions: admin actions are recorded with scope admin under
// the platform team, a grant that changes nothing is not recorded, the
// platform team's own log (members see team scope only) has none of
// them, and the admin route is for platform admins only.
func TestAuditAdminActions(t *testing.T) {
	box := &outbox{}
	e := newEnv(t, withAccounts(box, func(c *server.Config) { c.PlatformTeamID = "team_a" }))
	ctx := t.Context()
	ada := e.signUpAndLogIn(t, box, "ada@example.com") // first: admin
	bob := e.signUpAndLogIn(t, box, "bob@example.com")
	for range 2 { // the second changes nothing
		if code, b := e.call(t, "PUT", "/v1/admin/users/"+bob.UserID+"/admin", ada.AccessToken, `{"admin":true}`, nil); code != 200 {
			t.Fatalf("grant: %d %s", code, b)
		}
	}
	for range 2 {
		if code, b := e.call(t, "PUT", "/v1/admin/users/"+bob.UserID+"/admin", ada.AccessToken, `{"admin":false}`, nil); code != 200 {
			t.Fatalf("revoke: %d %s", code, b)
		}
	}
	if code, b := e.call(t, "PUT", "/v1/admin/users/"+ada.UserID+"/admin", ada.AccessToken, `{"admin":false}`, nil); code != 409 {
		t.Fatalf("revoke the last admin: %d %s, want 409", code, b)
	}
	for _, st := range []string{"disabled", "active"} {
		if code, b := e.call(t, "PUT", "/v1/admin/users/"+bob.UserID+"/status", ada.AccessToken, `{"status":"`+st+`"}`, nil); code != 200 {
			t.Fatalf("status %s: %d %s", st, code, b)
		}
	}
	secret, _, err := e.fleet.CreateJoinToken(ctx, "", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	j, err := e.fleet.Register(ctx, secret, fleet.Registration{Name: "h", URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"cordon", "uncordon"} {
		if code, b := e.call(t, "POST", "/v1/admin/hosts/"+j.HostID+"/"+verb, ada.AccessToken, "", nil); code != 200 {
			t.Fatalf("%s: %d %s", verb, code, b)
		}
	}
	var tok nestbox.JoinToken
	if code, b := e.call(t, "POST", "/v1/admin/join-tokens", ada.AccessToken, `{}`, &tok); code != 201 {
		t.Fatalf("join token: %d %s", code, b)
	}
	if code, b := e.call(t, "DELETE", "/v1/admin/join-tokens/"+tok.ID, ada.AccessToken, "", nil); code != 204 {
		t.Fatalf("revoke join token: %d %s", code, b)
	}

	es := e.auditLog(t, "/v1/admin/audit-logs?scope=admin", ada.AccessToken, 100)
	want := []string{"join_token.revoke", "join_token.create", "host.uncordon", "host.cordon", "user.activate", "user.deactivate",
		"user.revoke_admin", "user.revoke_admin", "user.grant_admin"}
	if got := actions(es); !slices.Equal(got, want) {
		t.Fatalf("admin entries = %v, want %v (one grant, one revoke, and the refused revoke)", got, want)
	}
	adaActor := nestbox.AuditActor{Type: nestbox.AuditActorUser, ID: ada.UserID, Name: "ada@example.com"}
	for _, x := range es {
		if x.Scope != nestbox.AuditScopeAdmin || x.TeamID != "team_a" || x.Actor != adaActor {
			t.Errorf("entry %s: %+v, want scope admin under team_a by ada", x.Action, x)
		}
	}
	if x := es[6]; x.ResourceID != ada.UserID || x.Status != nestbox.AuditFailure || x.Metadata["error"] != "conflict" {
		t.Errorf("the refused revoke: %+v, want a failure (conflict) about ada", x)
	}
	if x := find(t, es, "user.grant_admin", bob.UserID); x.Status != nestbox.AuditSuccess {
		t.Errorf("grant: %+v", x)
	}
	if m := find(t, es, "user.deactivate", bob.UserID).Metadata; m["keys_revoked"] != "0" || m["capsules_stopped"] != "0" {
		t.Errorf("deactivate's metadata %v", m)
	}
	find(t, es, "host.cordon", j.HostID)
	find(t, es, "join_token.create", tok.ID)

	// The platform team's own log is scope team: its members (and keys)
	// do not see the admins' entries, though they are under its ID.
	for _, x := range e.auditLog(t, "/v1/audit-logs", e.keyA, 100) {
		if x.Scope != nestbox.AuditScopeTeam {
			t.Errorf("the platform team's log shows %+v", x)
		}
	}
	// The admin route: every scope, or one; for admins only.
	if got := e.auditLog(t, "/v1/admin/audit-logs?scope=team", ada.AccessToken, 100); len(got) != 0 {
		t.Errorf("team entries = %v, want none yet", actions(got))
	}
	if code, b := e.call(t, "GET", "/v1/admin/audit-logs?scope=everyone", ada.AccessToken, "", nil); code != 400 || errorCode(t, b) != "invalid_argument" {
		t.Errorf("?scope=everyone: %d %s, want 400", code, b)
	}
	// Deactivation ended bob's session: a new one.
	var again tokens
	if code, b := e.call(t, "POST", "/v1/auth/login", "", `{"email":"bob@example.com","password":"long enough"}`, &again); code != 200 {
		t.Fatalf("bob logs in again: %d %s", code, b)
	}
	for name, cred := range map[string]string{"bob's session": again.AccessToken, "team b's key": e.keyB, "the platform team's key made by no admin": e.keyA} {
		if code, b := e.call(t, "GET", "/v1/admin/audit-logs", cred, "", nil); code != 403 || errorCode(t, b) != "permission_denied" {
			t.Errorf("admin audit log with %s: %d %s, want 403", name, code, b)
		}
	}
}

// TestAuditMembers: member changes are recorded in the team's log, which
// a member reads (scope team) once it acts for the team; an outsider's
// refused attempt on the team is not the team's to read.
func TestAuditMembers(t *testing.T) {
	box := &outbox{}
	e := newEnv(t, withAccounts(box, nil))
	ada := e.signUpAndLogIn(t, box, "ada@example.com")
	bob := e.signUpAndLogIn(t, box, "bob@example.com")
	eve := e.signUpAndLogIn(t, box, "eve@example.com")
	team := ada.TeamID
	var inv struct{ ID string }
	if code, b := e.call(t, "POST", "/v1/teams/"+team+"/invitations", ada.AccessToken, `{"email":"bob@example.com"}`, &inv); code != 201 {
		t.Fatalf("invite: %d %s", code, b)
	}
	if code, b := e.call(t, "POST", "/v1/invitations/accept", bob.AccessToken, fmt.Sprintf(`{"token":%q}`, box.token(t, "bob@example.com")), nil); code != 200 {
		t.Fatalf("accept: %d %s", code, b)
	}
	if code, b := e.call(t, "PATCH", "/v1/teams/"+team+"/members/"+bob.UserID, ada.AccessToken, `{"role":"admin"}`, nil); code != 200 {
		t.Fatalf("role: %d %s", code, b)
	}
	if code, b := e.call(t, "PATCH", "/v1/teams/"+team+"/members/"+bob.UserID, ada.AccessToken, `{"role":"member"}`, nil); code != 200 {
		t.Fatalf("role: %d %s", code, b)
	}
	// Eve is no member: 404, and nothing in the team's log.
	if code, _ := e.call(t, "DELETE", "/v1/teams/"+team+"/members/"+bob.UserID, eve.AccessToken, "", nil); code != 404 {
		t.Fatalf("an outsider removes a member: %d, want 404", code)
	}
	// Bob, a member, switches to the team and reads its log.
	var sw struct{ TeamID string }
	if code, b := e.call(t, "POST", "/v1/auth/switch", bob.AccessToken, fmt.Sprintf(`{"team_id":%q}`, team), &sw); code != 200 {
		t.Fatalf("switch: %d %s", code, b)
	}
	es := e.auditLog(t, "/v1/audit-logs", bob.AccessToken, 100)
	want := []string{"member.update", "member.update", "invitation.accept", "invitation.create"}
	if got := actions(es); !slices.Equal(got, want) {
		t.Fatalf("the team's log read by a member = %v, want %v", got, want)
	}
	if x := find(t, es, "invitation.create", inv.ID); x.Metadata["email"] != "bob@example.com" || x.Actor.ID != ada.UserID {
		t.Errorf("invitation entry %+v", x)
	}
	if x := find(t, es, "invitation.accept", inv.ID); x.Actor.ID != bob.UserID || x.TeamID != team {
		t.Errorf("accept entry %+v, want bob in ada's team", x)
	}
	if x := es[0]; x.ResourceID != bob.UserID || x.Metadata["role"] != "member" {
		t.Errorf("role entry %+v", x)
	}
	if code, b := e.call(t, "DELETE", "/v1/teams/"+team+"/members/"+bob.UserID, ada.AccessToken, "", nil); code != 204 {
		t.Fatalf("remove: %d %s", code, b)
	}
	find(t, e.auditLog(t, "/v1/audit-logs?resource_type=member&action=remove", ada.AccessToken, 100), "member.remove", bob.UserID)
	// Eve's refused attempt is in no log: not ada's team's (above), and
	// not her own team's, which it was not about.
	if got := e.auditLog(t, "/v1/audit-logs", eve.AccessToken, 100); len(got) != 0 {
		t.Errorf("eve's log = %+v, want nothing", got)
	}
}

// failingAnonymiser is a store whose anonymisation fails.
type failingAnonymiser struct{ store.Store }

func (failingAnonymiser) AnonymiseAuditEntries(context.Context, string) (int, error) {
	return 0, errdefs.Unavailable("the audit log is down")
}

// TestAuditPurgeAnonymises: the purge of a deleted account anonymises its
// audit entries first (the control plane sets account.Config.BeforePurge
// to the audit log's Anonymise); when that fails, the user is kept and its
// entries are as they were.
func TestAuditPurgeAnonymises(t *testing.T) {
	for _, failing := range []bool{false, true} {
		t.Run(fmt.Sprintf("failing=%v", failing), func(t *testing.T) {
			box := &outbox{}
			var acc *account.Service
			e := newEnv(t, withConfig(func(c *server.Config) {
				var st audit.Store = c.Store
				if failing {
					st = failingAnonymiser{c.Store}
				}
				lg, err := audit.New(audit.Config{Store: st})
				if err != nil {
					panic(err)
				}
				c.Audit = lg
				acc, err = account.New(account.Config{Store: c.Store, Mailer: box, LinkKey: []byte(strings.Repeat("k", 32)),
					PublicURL: "https://nestbox.test", BcryptCost: bcrypt.MinCost, BeforePurge: lg.Anonymise})
				if err != nil {
					panic(err)
				}
				c.Accounts = acc
				if c.Teams, err = team.New(team.Config{Store: c.Store, Mailer: box, LinkKey: []byte(strings.Repeat("k", 32)), PublicURL: "https://nestbox.test"}); err != nil {
					panic(err)
				}
				c.PlatformTeamID = "team_a"
			}))
			ctx := t.Context()
			ada := e.signUpAndLogIn(t, box, "ada@example.com") // admin
			bob := e.signUpAndLogIn(t, box, "bob@example.com")
			var c nestbox.Capsule
			if code, b := e.call(t, "POST", "/v1/capsules", bob.AccessToken, `{}`, &c); code != 202 {
				t.Fatalf("bob creates: %d %s", code, b)
			}
			if code, b := e.call(t, "PUT", "/v1/admin/users/"+bob.UserID+"/admin", ada.AccessToken, `{"admin":true}`, nil); code != 200 {
				t.Fatalf("grant bob: %d %s", code, b)
			}
			// Team A's key invites bob's address: the email is in its metadata.
			if code, b := e.call(t, "POST", "/v1/teams/team_a/invitations", e.keyA, `{"email":"bob@example.com"}`, nil); code != 201 {
				t.Fatalf("invite bob: %d %s", code, b)
			}
			// Bob's account was deleted longer ago than the grace period.
			old := time.Now().Add(-account.DefaultGrace - time.Hour)
			if err := e.store.SetAccountStatus(ctx, bob.UserID, store.AccountActive, store.AccountDeleted, old); err != nil {
				t.Fatal(err)
			}
			before := append(e.auditLog(t, "/v1/admin/audit-logs?scope=team", ada.AccessToken, 100),
				e.auditLog(t, "/v1/admin/audit-logs?scope=admin", ada.AccessToken, 100)...)
			n, err := acc.Purge(ctx)
			if err != nil {
				t.Fatal(err)
			}
			after := append(e.auditLog(t, "/v1/admin/audit-logs?scope=team", ada.AccessToken, 100),
				e.auditLog(t, "/v1/admin/audit-logs?scope=admin", ada.AccessToken, 100)...)
			_, gerr := e.store.GetUser(ctx, bob.UserID)
			if failing {
				if n != 0 || gerr != nil {
					t.Errorf("Purge with a failing anonymisation = %d; bob: %v; want 0 and bob kept", n, gerr)
				}
				if !slices.EqualFunc(before, after, func(a, b nestbox.AuditEntry) bool {
					return a.ID == b.ID && a.Actor == b.Actor && a.ResourceID == b.ResourceID
				}) {
					t.Errorf("entries changed by a failed anonymisation: %+v -> %+v", before, after)
				}
				return
			}
			if n != 1 || !errors.Is(gerr, errdefs.ErrNotFound) {
				t.Fatalf("Purge = %d; bob: %v; want 1 and bob gone", n, gerr)
			}
			for _, x := range after {
				if x.Actor.ID == bob.UserID || x.ResourceID == bob.UserID || strings.Contains(fmt.Sprint(x.Metadata), "bob@example.com") {
					t.Errorf("entry still names bob: %+v", x)
				}
			}
			if x := find(t, after, "capsule.create", c.ID); x.Actor != (nestbox.AuditActor{Type: nestbox.AuditActorUser, Name: store.AnonymousActor}) {
				t.Errorf("bob's create after the purge: actor %+v, want deleted-user", x.Actor)
			}
			if x := find(t, after, "user.grant_admin", ""); x.Actor.ID != ada.UserID {
				t.Errorf("the grant to bob after the purge: %+v, want ada's, about no one", x)
			}
		})
	}
}

// TestAuditE2B: the actions of E2B's dialect are recorded like the native
// API's, marked api e2b.
func TestAuditE2B(t *testing.T) {
	e := newEnv(t)
	key := apikey.E2BForm(e.keyA)
	sb := e.e2bCreate(t, key, "/sandboxes", `{"templateID":"base"}`)
	if code, b := e.do(t, "POST", "/sandboxes/"+sb.SandboxID+"/pause", key, nil); code != 204 {
		t.Fatalf("pause: %d %s", code, b)
	}
	if code, b := e.do(t, "POST", "/sandboxes/"+sb.SandboxID+"/resume", key, strings.NewReader(`{}`)); code != 201 {
		t.Fatalf("resume: %d %s", code, b)
	}
	if code, b := e.do(t, "DELETE", "/sandboxes/"+sb.SandboxID, key, nil); code != 204 {
		t.Fatalf("kill: %d %s", code, b)
	}
	es := e.auditLog(t, "/v1/audit-logs", e.keyA, 100)
	if got, want := actions(es), []string{"capsule.destroy", "capsule.resume", "capsule.pause", "capsule.create"}; !slices.Equal(got, want) {
		t.Fatalf("entries of the E2B calls = %v, want %v", got, want)
	}
	for _, x := range es {
		if x.ResourceID != sb.SandboxID || x.Metadata["api"] != "e2b" || x.Actor.ID != "key_team_a" || x.TeamID != "team_a" {
			t.Errorf("entry %+v, want about %s, api e2b, by team_a's key", x, sb.SandboxID)
		}
	}
}

// FuzzAuditQuery: whatever query reaches the audit routes, the answer is
// a page or a JSON error with a stable code (400 for bad input), never a
// 500 or a panic; the team route never shows another team's or an admin
// entry.
func FuzzAuditQuery(f *testing.F) {
	for _, s := range []string{
		"resource_type=capsule&action=pause", "action=capsule.pause", "cursor=MjAyNg", "cursor=%00",
		"from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z", "limit=-1", "scope=admin", "team_id=team_b&scope=team",
		"resource_type=" + strings.Repeat("x", 2000), "actor=key_team_b", "to=2026-13-01T00:00:00Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		// The query as a client's URL library would send it: what cannot
		// go raw on a request line (a space) is escaped.
		vals, _ := url.ParseQuery(raw)
		q := vals.Encode()
		e := newEnv(t)
		e.create(t, e.keyB, nestbox.CreateCapsuleRequest{}) // an entry of team B
		for _, path := range []string{"/v1/audit-logs", "/v1/admin/audit-logs"} {
			code, b := e.call(t, "GET", path+"?"+q, e.keyA, "", nil)
			if code >= 500 {
				t.Fatalf("GET %s?%s: %d %s", path, q, code, b)
			}
			if code >= 400 {
				if c := errorCode(t, b); code == 400 && c != "invalid_argument" {
					t.Fatalf("GET %s?%s: 400 %s", path, q, c)
				}
				continue
			}
			var page nestbox.AuditEntryList
			if err := json.Unmarshal(b, &page); err != nil {
				t.Fatalf("GET %s?%s: %v in %s", path, q, err, b)
			}
			for _, x := range page.Entries {
				if x.TeamID != "team_a" || x.Scope != nestbox.AuditScopeTeam {
					t.Fatalf("GET %s?%s as team A shows %+v", path, q, x)
				}
			}
		}
	})
}

// TestAuditMoreActions: the audited actions the tests above do not make
// are recorded too, each once, in the right log: a team's creation, its
// settings, a withdrawn invitation and a hand-over in the new team's log;
// a template made from a snapshot, its pool and its deletion in the
// team's; a restored user, a host that joins (by the platform: no user
// acts), drained and removed, in the admins'.
func TestAuditMoreActions(t *testing.T) {
	box := &outbox{}
	e := newEnv(t, withAccounts(box, func(c *server.Config) { c.PlatformTeamID = "team_a" }))
	ctx := t.Context()
	ada := e.signUpAndLogIn(t, box, "ada@example.com") // first: admin
	bob := e.signUpAndLogIn(t, box, "bob@example.com")

	var tm struct{ ID string }
	if code, b := e.call(t, "POST", "/v1/teams", ada.AccessToken, `{"name":"Shared"}`, &tm); code != 201 {
		t.Fatalf("create team: %d %s", code, b)
	}
	if code, b := e.call(t, "POST", "/v1/teams/"+tm.ID+"/invitations", ada.AccessToken, `{"email":"bob@example.com"}`, nil); code != 201 {
		t.Fatalf("invite bob: %d %s", code, b)
	}
	if code, b := e.call(t, "POST", "/v1/invitations/accept", bob.AccessToken, fmt.Sprintf(`{"token":%q}`, box.token(t, "bob@example.com")), nil); code != 200 {
		t.Fatalf("bob accepts: %d %s", code, b)
	}
	var inv struct{ ID string }
	if code, b := e.call(t, "POST", "/v1/teams/"+tm.ID+"/invitations", ada.AccessToken, `{"email":"carol@example.com"}`, &inv); code != 201 {
		t.Fatalf("invite carol: %d %s", code, b)
	}
	if code, b := e.call(t, "DELETE", "/v1/teams/"+tm.ID+"/invitations/"+inv.ID, ada.AccessToken, "", nil); code != 204 {
		t.Fatalf("withdraw: %d %s", code, b)
	}
	if code, b := e.call(t, "PUT", "/v1/teams/"+tm.ID+"/settings", ada.AccessToken, `{"members_mint_keys":true}`, nil); code != 200 {
		t.Fatalf("settings: %d %s", code, b)
	}
	if code, b := e.call(t, "PUT", "/v1/teams/"+tm.ID+"/owner", ada.AccessToken, fmt.Sprintf(`{"user_id":%q}`, bob.UserID), nil); code != 200 {
		t.Fatalf("hand over: %d %s", code, b)
	}
	if code, b := e.call(t, "POST", "/v1/auth/switch", ada.AccessToken, fmt.Sprintf(`{"team_id":%q}`, tm.ID), nil); code != 200 {
		t.Fatalf("switch: %d %s", code, b)
	}
	es := e.auditLog(t, "/v1/audit-logs", ada.AccessToken, 100)
	for _, w := range []struct{ action, id string }{
		{"team.create", tm.ID}, {"invitation.withdraw", inv.ID}, {"team.update_settings", tm.ID}, {"member.transfer_ownership", bob.UserID},
	} {
		if x := find(t, es, w.action, w.id); x.Scope != nestbox.AuditScopeTeam || x.TeamID != tm.ID || x.Actor.ID != ada.UserID || x.Status != nestbox.AuditSuccess {
			t.Errorf("%s: %+v, want a success by ada in %s's log", w.action, x, tm.ID)
		}
	}
	if m := find(t, es, "team.update_settings", tm.ID).Metadata; m["members_mint_keys"] != "true" {
		t.Errorf("settings entry's metadata %v", m)
	}

	c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
	sn := e.snapshot(t, e.keyA, c.ID, `{}`)
	if code, b := e.call(t, "POST", "/v1/templates", e.keyA, `{"name":"tpl-audit","from_snapshot":"`+sn.ID+`"}`, nil); code != 201 {
		t.Fatalf("make template: %d %s", code, b)
	}
	if code, b := e.call(t, "PUT", "/v1/templates/tpl-audit/pool", e.keyA, `{"size":1}`, nil); code != 200 {
		t.Fatalf("pool: %d %s", code, b)
	}
	if code, b := e.call(t, "DELETE", "/v1/templates/tpl-audit", e.keyA, "", nil); code != 204 {
		t.Fatalf("delete template: %d %s", code, b)
	}
	es = e.auditLog(t, "/v1/audit-logs?resource_type=template", e.keyA, 100)
	if got, want := actions(es), []string{"template.delete", "template.pool", "template.create"}; !slices.Equal(got, want) {
		t.Fatalf("team_a's template entries = %v, want %v", got, want)
	}
	if m := find(t, es, "template.create", "tpl-audit").Metadata; m["from_snapshot"] != sn.ID {
		t.Errorf("template entry's metadata %v, want from_snapshot %s", m, sn.ID)
	}
	if m := find(t, es, "template.pool", "tpl-audit").Metadata; m["size"] != "1" {
		t.Errorf("pool entry's metadata %v, want size 1", m)
	}

	if code, b := e.call(t, "DELETE", "/v1/users/me", bob.AccessToken, "", nil); code != 202 {
		t.Fatalf("bob deletes his account: %d %s", code, b)
	}
	if code, b := e.call(t, "POST", "/v1/admin/users/"+bob.UserID+"/restore", ada.AccessToken, "", nil); code != 200 {
		t.Fatalf("restore bob: %d %s", code, b)
	}
	secret, _, err := e.fleet.CreateJoinToken(ctx, "", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	// A bad token is no one's: not recorded. The host's join is.
	if code, _ := e.call(t, "POST", "/v1/hosts/register", "nbj_not-a-token", `{"name":"h","url":"http://127.0.0.1:1"}`, nil); code != 401 {
		t.Fatalf("register with a bad token: %d, want 401", code)
	}
	var j fleet.Joined
	if code, b := e.call(t, "POST", "/v1/hosts/register", secret, `{"name":"h","url":"http://127.0.0.1:1"}`, &j); code != 201 {
		t.Fatalf("register: %d %s", code, b)
	}
	if code, b := e.call(t, "POST", "/v1/admin/hosts/"+j.HostID+"/drain", ada.AccessToken, "", nil); code != 200 {
		t.Fatalf("drain: %d %s", code, b)
	}
	if code, b := e.call(t, "DELETE", "/v1/admin/hosts/"+j.HostID, ada.AccessToken, "", nil); code != 204 {
		t.Fatalf("remove host: %d %s", code, b)
	}
	es = e.auditLog(t, "/v1/admin/audit-logs?scope=admin", ada.AccessToken, 100)
	if got, want := actions(es), []string{"host.remove", "host.drain", "host.register", "user.restore"}; !slices.Equal(got, want) {
		t.Fatalf("admin entries = %v, want %v", got, want)
	}
	if x := find(t, es, "host.register", j.HostID); x.Actor != audit.SystemActor() || x.TeamID != "team_a" || x.Metadata["name"] != "h" || x.Metadata["url"] != "http://127.0.0.1:1" {
		t.Errorf("host.register: %+v, want by the platform under the platform team, with the host's name and URL", x)
	}
	for _, w := range []struct{ action, id string }{{"user.restore", bob.UserID}, {"host.drain", j.HostID}, {"host.remove", j.HostID}} {
		if x := find(t, es, w.action, w.id); x.TeamID != "team_a" || x.Actor.ID != ada.UserID || x.Status != nestbox.AuditSuccess {
			t.Errorf("%s: %+v, want a success by ada under the platform team", w.action, x)
		}
	}
}
