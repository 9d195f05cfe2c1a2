package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"time"

	"golang.org/x/crypto/bcrypt"

	"nestbox.dev"
	"nestbox.dev/internal/account"
	"nestbox.dev/internal/apikey"
	"nestbox.dev/internal/mail"
	"nestbox.dev/internal/server"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/team"
)

// outbox is a Mailer that keeps what it is sent.
type outbox struct {
	mu   sync.Mutex
	msgs []mail.Message
}

func (o *outbox) Send(_ context.Context, m mail.Message) error {
	if err := m.Check(); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs = append(o.msgs, m)
	return nil
}

var mailToken = regexp.MustCompile(`token=([A-Za-z0-9_.%-]+)|"token": "([A-Za-z0-9_.-]+)"`)

// token is the link token of the last mail to to.
func (o *outbox) token(t *testing.T, to string) string {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.msgs) - 1; i >= 0; i-- {
		if o.msgs[i].To == to {
			if g := mailToken.FindStringSubmatch(o.msgs[i].Text); g != nil {
				return g[1] + g[2]
			}
		}
	}
	t.Fatalf("no mail with a token to %s", to)
	return ""
}

// withAccounts runs the server with an account and a team service over its store,
// mailing into box; more adjusts the server's config.
func withAccounts(box *outbox, more func(*server.Config)) envOption {
	return withConfig(func(c *server.Config) {
		acc, err := account.New(account.Config{Store: c.Store, Mailer: box, LinkKey: []byte(strings.Repeat("k", 32)),
			PublicURL: "https://nestbox.test", BcryptCost: bcrypt.MinCost})
		if err != nil {
			panic(err) // only a bad literal config above
		}
		c.Accounts = acc
		tm, err := team.New(team.Config{Store: c.Store, Mailer: box, LinkKey: []byte(strings.Repeat("k", 32)), PublicURL: "https://nestbox.test"})
		if err != nil {
			panic(err)
		}
		c.Teams = tm
		if more != nil {
			more(c)
		}
	})
}

// call sends a JSON request with credential cred (none if empty) and
// decodes a 2xx answer into out.
func (e *env) call(t *testing.T, method, path, cred, body string, out any) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	code, b := send(t, req)
	if out != nil && code/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return code, b
}

type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	UserID       string `json:"user_id"`
	TeamID       string `json:"team_id"`
}

// signUpAndLogIn signs email up, verifies it through the API and logs in.
func (e *env) signUpAndLogIn(t *testing.T, box *outbox, email string) tokens {
	t.Helper()
	if code, b := e.call(t, "POST", "/v1/auth/signup", "", fmt.Sprintf(`{"email":%q,"password":"long enough"}`, email), nil); code != 202 {
		t.Fatalf("sign-up %s: %d %s", email, code, b)
	}
	if code, b := e.call(t, "GET", "/v1/auth/verify?token="+box.token(t, email), "", "", nil); code != 200 {
		t.Fatalf("verify %s: %d %s", email, code, b)
	}
	var tok tokens
	if code, b := e.call(t, "POST", "/v1/auth/login", "", fmt.Sprintf(`{"email":%q,"password":"long enough"}`, email), &tok); code != 200 {
		t.Fatalf("log in %s: %d %s", email, code, b)
	}
	return tok
}

// TestSessionFlow: sign-up, verify, log-in through the API; the session
// works where an API key does, for its own team only; refresh, log-out.
func TestSessionFlow(t *testing.T) {
	box := &outbox{}
	e := newEnv(t, withAccounts(box, nil))
	ada := e.signUpAndLogIn(t, box, "ada@example.com")

	// A capsule made with the session belongs to the session's team.
	var c nestbox.Capsule
	if code, b := e.call(t, "POST", "/v1/capsules", ada.AccessToken, `{}`, &c); code != 202 {
		t.Fatalf("create with a session: %d %s", code, b)
	}
	if c.TeamID != ada.TeamID {
		t.Errorf("capsule of team %s, want the session's %s", c.TeamID, ada.TeamID)
	}
	// The session sees no other team's capsules, and others not its own.
	other := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})
	if code, _ := e.call(t, "GET", "/v1/capsules/"+other.ID, ada.AccessToken, "", nil); code != 404 {
		t.Errorf("another team's capsule with a session: %d, want 404", code)
	}
	if code, _ := e.call(t, "GET", "/v1/capsules/"+c.ID, e.keyA, "", nil); code != 404 {
		t.Errorf("the session team's capsule with another team's key: %d, want 404", code)
	}
	// A key minted in a session records its user.
	var k struct{ ID, Key string }
	if code, b := e.call(t, "POST", "/v1/keys", ada.AccessToken, `{"name":"mine"}`, &k); code != 201 {
		t.Fatalf("create key with a session: %d %s", code, b)
	}
	keys, err := e.store.ListAPIKeys(t.Context(), ada.TeamID)
	if err != nil || len(keys) != 1 || keys[0].CreatedBy != ada.UserID {
		t.Errorf("keys of the session's team = %+v, %v; want one made by %s", keys, err, ada.UserID)
	}

	// Refresh: new tokens, the old access token and refresh token dead.
	var next tokens
	if code, b := e.call(t, "POST", "/v1/auth/refresh", "", fmt.Sprintf(`{"refresh_token":%q}`, ada.RefreshToken), &next); code != 200 {
		t.Fatalf("refresh: %d %s", code, b)
	}
	for _, tc := range []struct{ name, method, path, cred, body string }{
		{"old access token", "GET", "/v1/capsules", ada.AccessToken, ""},
		{"old refresh token", "POST", "/v1/auth/refresh", "", fmt.Sprintf(`{"refresh_token":%q}`, ada.RefreshToken)},
	} {
		code, b := e.call(t, tc.method, tc.path, tc.cred, tc.body, nil)
		if code != 401 || errorCode(t, b) != "unauthenticated" {
			t.Errorf("%s: %d %s, want 401 unauthenticated", tc.name, code, b)
		}
	}
	// A password change needs the current password, and ends the session.
	if code, b := e.call(t, "POST", "/v1/auth/password", next.AccessToken, `{"current_password":"wrong one","new_password":"another long one"}`, nil); code != 403 {
		t.Errorf("change password with a wrong current one: %d %s, want 403", code, b)
	}
	if code, b := e.call(t, "POST", "/v1/auth/password", next.AccessToken, `{"current_password":"long enough","new_password":"another long one"}`, nil); code != 204 {
		t.Fatalf("change password: %d %s", code, b)
	}
	if code, _ := e.call(t, "GET", "/v1/capsules", next.AccessToken, "", nil); code != 401 {
		t.Errorf("the session after a password change: %d, want 401", code)
	}
	if code, b := e.call(t, "POST", "/v1/auth/login", "", `{"email":"ada@example.com","password":"another long one"}`, &next); code != 200 {
		t.Fatalf("log in with the new password: %d %s", code, b)
	}
	if code, b := e.call(t, "POST", "/v1/auth/logout", next.AccessToken, "", nil); code != 204 {
		t.Fatalf("log out: %d %s", code, b)
	}
	if code, _ := e.call(t, "GET", "/v1/capsules", next.AccessToken, "", nil); code != 401 {
		t.Errorf("after log-out: %d, want 401", code)
	}
	// The bootstrap-style API key keeps working beside sessions.
	if code, _ := e.call(t, "GET", "/v1/capsules", e.keyA, "", nil); code != 200 {
		t.Errorf("an API key with accounts on: %d, want 200", code)
	}
}

// TestAuthErrors: bad input to the account routes gets JSON errors with
// stable codes.
func TestAuthErrors(t *testing.T) {
	box := &outbox{}
	e := newEnv(t, withAccounts(box, nil))
	e.signUpAndLogIn(t, box, "ada@example.com")
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		errCode                  string
	}{
		{"bad email", "POST", "/v1/auth/signup", `{"email":"x","password":"long enough"}`, 400, "invalid_argument"},
		{"short password", "POST", "/v1/auth/signup", `{"email":"b@example.com","password":"short"}`, 400, "invalid_argument"},
		{"unknown field", "POST", "/v1/auth/signup", `{"email":"b@example.com","password":"long enough","admin":true}`, 400, "invalid_argument"},
		{"no body", "POST", "/v1/auth/login", ``, 400, "invalid_argument"},
		{"wrong password", "POST", "/v1/auth/login", `{"email":"ada@example.com","password":"wrong one"}`, 401, "unauthenticated"},
		{"unknown email", "POST", "/v1/auth/login", `{"email":"nobody@example.com","password":"long enough"}`, 401, "unauthenticated"},
		{"tampered link", "GET", "/v1/auth/verify?token=verify.usr_aaaa.99999999999.0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", 400, "invalid_argument"},
		{"no token", "GET", "/v1/auth/verify", "", 400, "invalid_argument"},
		{"malformed refresh", "POST", "/v1/auth/refresh", `{"refresh_token":"nbs_x"}`, 401, "unauthenticated"},
		{"reset bad token", "POST", "/v1/auth/password-reset/confirm", `{"token":"x","password":"long enough"}`, 400, "invalid_argument"},
		{"malformed session", "GET", "/v1/capsules", "", 401, "unauthenticated"},
	} {
		cred := ""
		if tc.name == "malformed session" {
			cred = "nbs_not-a-token"
		}
		code, b := e.call(t, tc.method, tc.path, cred, tc.body, nil)
		if code != tc.code || errorCode(t, b) != tc.errCode {
			t.Errorf("%s: %d %s, want %d %s", tc.name, code, b, tc.code, tc.errCode)
		}
	}
}

// TestAuthRateLimits: log-in and reset attempts are bounded per account
// (whatever the address) and per address (whatever the account).
func TestAuthRateLimits(t *testing.T) {
	box := &outbox{}
	e := newEnv(t, withAccounts(box, func(c *server.Config) { c.AuthPerAddress, c.AuthPerAccount = 8, 3 }))
	wrong := `{"email":"ada@example.com","password":"wrong one"}`
	for i := range 3 {
		if code, b := e.call(t, "POST", "/v1/auth/login", "", wrong, nil); code != 401 {
			t.Fatalf("attempt %d: %d %s, want 401", i+1, code, b)
		}
	}
	code, b := e.call(t, "POST", "/v1/auth/login", "", wrong, nil)
	if code != 429 || errorCode(t, b) != "resource_exhausted" {
		t.Errorf("4th log-in for one account: %d %s, want 429 resource_exhausted", code, b)
	}
	// The account's limit covers resets too (the same bucket).
	if code, _ := e.call(t, "POST", "/v1/auth/password-reset", "", `{"email":"ada@example.com"}`, nil); code != 429 {
		t.Errorf("reset for a limited account: %d, want 429", code)
	}
	// Every attempt from the address counted, refused ones too (5 so
	// far): other accounts get 3 more of the 8, then 429.
	for i := range 3 {
		body := fmt.Sprintf(`{"email":"u%d@example.com","password":"wrong one"}`, i)
		if code, b := e.call(t, "POST", "/v1/auth/login", "", body, nil); code != 401 {
			t.Fatalf("other account %d: %d %s, want 401", i, code, b)
		}
	}
	if code, b := e.call(t, "POST", "/v1/auth/login", "", `{"email":"fresh@example.com","password":"wrong one"}`, nil); code != 429 {
		t.Errorf("9th attempt from one address: %d %s, want 429", code, b)
	}
}

// TestAdminRoutes: only platform admins grant and revoke; the first
// activated account and the bootstrap's platform-team key are admins; the
// last admin stays; grants and no-op revokes are idempotent.
func TestAdminRoutes(t *testing.T) {
	box := &outbox{}
	e := newEnv(t, withAccounts(box, func(c *server.Config) { c.PlatformTeamID = "team_a" }))
	ctx := t.Context()
	ada := e.signUpAndLogIn(t, box, "ada@example.com") // first: admin
	bob := e.signUpAndLogIn(t, box, "bob@example.com")

	put := func(cred, user string, admin bool) (int, []byte) {
		return e.call(t, "PUT", "/v1/admin/users/"+user+"/admin", cred, fmt.Sprintf(`{"admin":%v}`, admin), nil)
	}
	if code, b := put(bob.AccessToken, bob.UserID, true); code != 403 || errorCode(t, b) != "permission_denied" {
		t.Errorf("a non-admin's session granting itself: %d %s, want 403", code, b)
	}
	// team_a's key was made by nobody: no admin, though of the platform team.
	if code, _ := put(e.keyA, bob.UserID, true); code != 403 {
		t.Errorf("a platform-team key made by nobody: %d, want 403", code)
	}
	var got struct {
		Admin, Changed bool
	}
	for i, want := range []bool{true, false} { // grant, then grant again: no change
		if code, b := e.call(t, "PUT", "/v1/admin/users/"+bob.UserID+"/admin", ada.AccessToken, `{"admin":true}`, &got); code != 200 || !got.Admin || got.Changed != want {
			t.Errorf("grant #%d: %d %s, want 200 admin, changed %v", i+1, code, b, want)
		}
	}
	if code, b := put(ada.AccessToken, bob.UserID, false); code != 200 {
		t.Errorf("revoke bob: %d %s", code, b)
	}
	if code, b := e.call(t, "PUT", "/v1/admin/users/"+bob.UserID+"/admin", ada.AccessToken, `{"admin":false}`, &got); code != 200 || got.Changed {
		t.Errorf("revoke a non-admin: %d %s, want 200 unchanged", code, b)
	}
	// Ada is the last admin (the test env has no bootstrap admin).
	if code, b := put(ada.AccessToken, ada.UserID, false); code != 409 || errorCode(t, b) != "conflict" {
		t.Errorf("revoke the last admin: %d %s, want 409 conflict", code, b)
	}
	if code, b := put(ada.AccessToken, "usr_nobody", true); code != 404 {
		t.Errorf("grant an unknown user: %d %s, want 404", code, b)
	}
	if code, b := e.call(t, "PUT", "/v1/admin/users/"+bob.UserID+"/admin", ada.AccessToken, `{}`, nil); code != 400 {
		t.Errorf("no admin field: %d %s, want 400", code, b)
	}

	// A key of the platform team made by an admin acts as admin (the
	// bootstrap's key); once its maker is no admin, it does not.
	if err := e.store.CreateUser(ctx, store.User{ID: "usr_boot", Admin: true, CreatedAt: ada0}); err != nil {
		t.Fatal(err)
	}
	bootKey := e.addKey(t, "team_a", "usr_boot")
	if code, b := put(bootKey, bob.UserID, true); code != 200 {
		t.Errorf("the bootstrap-style key granting: %d %s, want 200", code, b)
	}
	if code, b := put(ada.AccessToken, "usr_boot", false); code != 200 {
		t.Fatalf("revoke usr_boot: %d %s", code, b)
	}
	if code, _ := put(bootKey, bob.UserID, false); code != 403 {
		t.Errorf("a key whose maker is no longer admin: %d, want 403", code)
	}

	// Deleting oneself, and the admin's restore.
	if code, b := e.call(t, "DELETE", "/v1/users/me", bob.AccessToken, "", nil); code != 202 {
		t.Fatalf("delete me: %d %s", code, b)
	}
	if code, _ := e.call(t, "POST", "/v1/auth/login", "", `{"email":"bob@example.com","password":"long enough"}`, nil); code != 401 {
		t.Errorf("log in to a deleted account: %d, want 401", code)
	}
	if code, b := e.call(t, "POST", "/v1/admin/users/"+bob.UserID+"/restore", ada.AccessToken, "", nil); code != 200 {
		t.Errorf("restore: %d %s", code, b)
	}
	if code, b := e.call(t, "POST", "/v1/admin/users/"+bob.UserID+"/restore", ada.AccessToken, "", nil); code != 409 {
		t.Errorf("restore twice: %d %s, want 409", code, b)
	}
	if code, _ := e.call(t, "POST", "/v1/auth/login", "", `{"email":"bob@example.com","password":"long enough"}`, nil); code != 200 {
		t.Errorf("log in after restore: %d, want 200", code)
	}
}

var ada0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// addKey makes an API key of team made by user and returns its secret.
func (e *env) addKey(t *testing.T, team, user string) string {
	t.Helper()
	key, hash := apikey.New()
	k := store.APIKey{ID: "key_" + user, TeamID: team, Name: "made by " + user, Prefix: apikey.DisplayPrefix(key), Hash: hash, CreatedBy: user, CreatedAt: ada0}
	if err := e.store.CreateAPIKey(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	return key
}
