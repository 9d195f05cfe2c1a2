package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestAccountsOnUp: a real `nestbox up` with its development mailer: a
// sign-up's verification link is in the log, verifying makes the first
// account platform admin, its session lists capsules and the admin routes,
// and the bootstrap key keeps working beside it. The log holds the link
// (the development mailer's purpose) but never the password or a
// session's token.
func TestAccountsOnUp(t *testing.T) {
	p := startUp(t, "--log-level", "info")
	const password = "a password nobody logs"
	call := func(method, path, cred, body string, out any) int {
		t.Helper()
		req, err := http.NewRequest(method, p.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if cred != "" {
			req.Header.Set("Authorization", "Bearer "+cred)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if out != nil && resp.StatusCode/100 == 2 {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: %v in %s", method, path, err, b)
			}
		}
		if resp.StatusCode/100 != 2 {
			t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode
	}
	if code := call("POST", "/v1/auth/signup", "", fmt.Sprintf(`{"email":"ada@example.com","password":%q}`, password), nil); code != 202 {
		t.Fatalf("sign-up: %d", code)
	}
	// The mail is logged before the sign-up answers.
	link := regexp.MustCompile(`/v1/auth/verify\?token=([A-Za-z0-9_.%-]+)`).FindStringSubmatch(p.log.String())
	if link == nil {
		t.Fatalf("no verification link in nestbox up's log:\n%s", p.log.String())
	}
	var user struct {
		ID    string `json:"id"`
		Admin bool   `json:"admin"`
	}
	if code := call("GET", "/v1/auth/verify?token="+link[1], "", "", &user); code != 200 || !user.Admin {
		t.Fatalf("verify: %d, user %+v; want the first account to be admin", code, user)
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		TeamID       string `json:"team_id"`
	}
	if code := call("POST", "/v1/auth/login", "", fmt.Sprintf(`{"email":"ada@example.com","password":%q}`, password), &tok); code != 200 {
		t.Fatalf("log in: %d", code)
	}
	for _, tc := range []struct{ name, cred, path string }{
		{"session, team route", tok.AccessToken, "/v1/capsules"},
		{"session, admin route", tok.AccessToken, "/v1/admin/users"},
		{"bootstrap key, team route", p.key, "/v1/capsules"},
		{"bootstrap key, admin route", p.key, "/v1/admin/teams"},
	} {
		if code := call("GET", tc.path, tc.cred, "", nil); code != 200 {
			t.Errorf("%s: %d, want 200", tc.name, code)
		}
	}
	if code := call("POST", "/v1/auth/logout", tok.AccessToken, "", nil); code != 204 {
		t.Errorf("log out: %d", code)
	}
	log := p.log.String()
	for name, secret := range map[string]string{"password": password, "access token": tok.AccessToken, "refresh token": tok.RefreshToken} {
		if strings.Contains(log, secret) {
			t.Errorf("nestbox up's log holds the %s", name)
		}
	}
}
