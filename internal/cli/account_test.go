package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAccountSignUp(t *testing.T) {
	f := newFakeAccounts(t)
	res := f.run(t, Account, "a long password\n", nil, "signup", "--email", "bob@example.com", "--name", "Bob")
	if res.err != nil || !strings.Contains(res.stdout, "verification link") {
		t.Fatalf("signup: %v\n%s", res.err, res.stdout)
	}
	if len(f.signUps) != 1 || f.signUps[0]["email"] != "bob@example.com" || f.signUps[0]["password"] != "a long password" || f.signUps[0]["name"] != "Bob" {
		t.Errorf("the server got %v", f.signUps)
	}
	for _, tc := range []struct {
		name, stdin string
		args        []string
	}{
		{"no email", "pw\n", []string{"signup"}},
		{"no password", "", []string{"signup", "--email", "x@example.com"}},
		{"a password flag", "pw\n", []string{"signup", "--email", "x@example.com", "--password", "pw"}},
	} {
		if res := f.run(t, Account, tc.stdin, nil, tc.args...); res.err == nil {
			t.Errorf("signup with %s succeeded", tc.name)
		}
	}
	if len(f.signUps) != 1 {
		t.Errorf("refused sign-ups reached the server: %v", f.signUps)
	}
}

// TestAccountSession: log-in saves a private session that the client
// verbs then act with (an API key given wins), whoami names it, log-out
// ends it on the server and forgets it.
func TestAccountSession(t *testing.T) {
	f := newFakeAccounts(t)
	if res := f.run(t, Account, "wrong\n", nil, "login", "--email", "ada@example.com"); res.err == nil || !strings.Contains(res.err.Error(), "unauthenticated") {
		t.Errorf("login with a wrong password: %v", res.err)
	}
	res := f.run(t, Account, "secret pw\n", nil, "login", "--email", "ada@example.com")
	if res.err != nil || !strings.Contains(res.stdout, "ada@example.com") || !strings.Contains(res.stdout, adaTeam) {
		t.Fatalf("login: %v\n%s", res.err, res.stdout)
	}
	path := filepath.Join(f.dataDir, "session.json")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session file: %v, %v; want mode 0600", fi, err)
	}
	if strings.Contains(res.stdout+res.stderr, "nbs_") || strings.Contains(res.stdout+res.stderr, "nbr_") {
		t.Errorf("login printed a token:\n%s%s", res.stdout, res.stderr)
	}

	if res := f.run(t, Capsule, "", nil, "ls"); res.err != nil {
		t.Fatalf("capsule ls with the session: %v", res.err)
	}
	if res := f.run(t, Capsule, "", map[string]string{"NESTBOX_API_KEY": fakeKey}, "ls"); res.err != nil {
		t.Fatalf("capsule ls with NESTBOX_API_KEY: %v", res.err)
	}
	if want := []string{f.access, fakeKey}; strings.Join(f.capsuleKeys, " ") != strings.Join(want, " ") {
		t.Errorf("capsule ls sent %v, want the session's token, then the environment's key", f.capsuleKeys)
	}

	res = f.run(t, Account, "", nil, "whoami")
	for _, want := range []string{f.url, "ada@example.com", "usr_ada", adaTeam, "ada's", "owner"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("whoami lacks %q: %v\n%s", want, res.err, res.stdout)
		}
	}
	res = f.run(t, Account, "", map[string]string{"NESTBOX_API_KEY": fakeKey}, "whoami", "--json")
	var who map[string]string
	if err := json.Unmarshal([]byte(res.stdout), &who); err != nil || who["as"] != "api_key" || who["key"] != fakeKey[:8]+"..." || strings.Contains(res.stdout, fakeKey) {
		t.Errorf("whoami --json with an API key: %v %s", err, res.stdout)
	}

	res = f.run(t, Account, "", nil, "logout")
	if res.err != nil || !f.loggedOut {
		t.Fatalf("logout: %v; the server was told: %v", res.err, f.loggedOut)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the session file after logout: %v", err)
	}
	if res := f.run(t, Account, "", nil, "logout"); res.err == nil {
		t.Error("a second logout succeeded")
	}
	if res := f.run(t, Capsule, "", nil, "ls"); res.err == nil {
		t.Error("capsule ls after logout, with no other credential, succeeded")
	}
}

// TestAccountRefresh: a session about to expire is refreshed (and saved)
// before a command; one that cannot be refreshed is an error that says to
// log in, never a fall-back to the credentials file's key.
func TestAccountRefresh(t *testing.T) {
	f := newFakeAccounts(t)
	f.expiresIn = 10 * time.Second // within refreshBefore
	if res := f.run(t, Account, "secret pw\n", nil, "login", "--email", "ada@example.com"); res.err != nil {
		t.Fatal(res.err)
	}
	if res := f.run(t, Capsule, "", nil, "ls"); res.err != nil {
		t.Fatalf("capsule ls: %v", res.err)
	}
	if f.refreshes != 1 || f.capsuleKeys[0] != f.access {
		t.Fatalf("%d refreshes, capsule ls sent %q; want one refresh and the new token %q", f.refreshes, f.capsuleKeys[0], f.access)
	}
	s, _, err := loadSession(IO{Getenv: func(k string) string { return map[string]string{"NESTBOX_DATA_DIR": f.dataDir}[k] }})
	if err != nil || s.AccessToken != f.access || s.RefreshToken != f.refresh {
		t.Errorf("the saved session after the refresh: %+v, %v", s, err)
	}

	if err := WriteCredentials(f.dataDir, f.url, fakeKey); err != nil {
		t.Fatal(err)
	}
	f.refreshFails = true
	res := f.run(t, Capsule, "", nil, "ls")
	if res.err == nil || !strings.Contains(res.err.Error(), "account login") {
		t.Errorf("capsule ls with a session that cannot be refreshed: %v, want an error saying to log in", res.err)
	}
	if len(f.capsuleKeys) != 1 {
		t.Errorf("capsule ls went on with another credential: %v", f.capsuleKeys)
	}
}
