package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"nestbox.dev"
	"nestbox.dev/internal/server"
)

// FuzzAuthRoutes: whatever body or token reaches the routes that take no
// credential (sign-up, verify, log-in, refresh, reset), the answer is a
// success or a JSON error with a stable code, never a 500 or a panic.
func FuzzAuthRoutes(f *testing.F) {
	for _, s := range []string{
		`{"email":"a@example.com","password":"long enough"}`, `{"email":"","password":""}`, `{"email":1}`,
		`{"refresh_token":"nbr_0123456789abcdef0123456789abcdef01234567"}`, `{"token":"reset.usr_x.1.0.AAAA","password":"long enough"}`,
		`verify.usr_x.99999999999.0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`, `[`, `{"email":"a@b","password":"` + strings.Repeat("p", 80) + `"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		e := newEnv(t, withAccounts(&outbox{}, func(c *server.Config) { c.AuthPerAddress, c.AuthPerAccount = -1, -1 }))
		for _, rt := range []struct{ method, path, body string }{
			{"POST", "/v1/auth/signup", in},
			{"POST", "/v1/auth/login", in},
			{"POST", "/v1/auth/refresh", in},
			{"POST", "/v1/auth/password-reset", in},
			{"POST", "/v1/auth/password-reset/confirm", in},
			{"GET", "/v1/auth/verify?token=" + url.QueryEscape(in), ""},
		} {
			code, b := e.call(t, rt.method, rt.path, "", rt.body, nil)
			if code >= 500 {
				t.Fatalf("%s %s with %q: %d %s", rt.method, rt.path, in, code, b)
			}
			if code >= 400 {
				var eb nestbox.ErrorBody
				if err := json.Unmarshal(b, &eb); err != nil || eb.Error.Code == "" {
					t.Fatalf("%s %s with %q: %d and no JSON error: %s", rt.method, rt.path, in, code, b)
				}
			}
			if code == http.StatusOK && rt.path == "/v1/auth/login" {
				t.Fatalf("log-in with %q succeeded on a platform with no verified account", in)
			}
		}
	})
}
