package files

import (
	"encoding/base64"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"nestbox.dev/internal/envd/auth"
	"nestbox.dev/internal/envd/settings"
)

func TestNewChecksConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New without settings: got nil error")
	}
	if _, err := New(Config{Settings: settings.New("user", ""), MaxUploadBytes: -1}); err == nil {
		t.Error("New with a negative limit: got nil error")
	}
}

func TestAuth(t *testing.T) {
	const tok = "secret-token"
	e := newEnv(t, currentUserName(t), 0)
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	mustWrite(t, file, "content")

	// Without a token set, nothing is checked.
	if r := e.do(t, "GET", q("path", file), nil, nil); r.status != 200 {
		t.Fatalf("no token set: got %d", r.status)
	}
	e.setToken(tok)
	future := strconv.FormatInt(fixedUnix+60, 10)
	past := strconv.FormatInt(fixedUnix-1, 10)
	sign := func(path, op, user string, exp string) string {
		n, _ := strconv.ParseInt(exp, 10, 64)
		return auth.Sign(path, op, user, tok, n)
	}
	up := filepath.Join(dir, "up")

	for _, tc := range []struct {
		name   string
		method string
		query  []string
		hdr    map[string]string
		status int
	}{
		{"no credentials", "GET", []string{"path", file}, nil, 401},
		{"token", "GET", []string{"path", file}, map[string]string{"X-Access-Token": tok}, 200},
		{"wrong token", "GET", []string{"path", file}, map[string]string{"X-Access-Token": "nope"}, 401},
		{"read signature", "GET", []string{"path", file, "signature", sign(file, "read", "", "")}, nil, 200},
		{"read signature with expiry", "GET", []string{"path", file, "signature", sign(file, "read", "", future), "signature_expiration", future}, nil, 200},
		{"wrong token, good signature", "GET", []string{"path", file, "signature", sign(file, "read", "", "")}, map[string]string{"X-Access-Token": "nope"}, 200},
		{"write signature on GET", "GET", []string{"path", file, "signature", sign(file, "write", "", "")}, nil, 401},
		{"signature of another path", "GET", []string{"path", file, "signature", sign(file+"x", "read", "", "")}, nil, 401},
		{"signature without the username", "GET", []string{"path", file, "username", "root", "signature", sign(file, "read", "", "")}, nil, 401},
		{"signature with the username", "GET", []string{"path", file, "username", "root", "signature", sign(file, "read", "root", "")}, nil, 200},
		{"expiry tampered", "GET", []string{"path", file, "signature", sign(file, "read", "", future), "signature_expiration", strconv.FormatInt(fixedUnix+3600, 10)}, nil, 401},
		{"bad expiry", "GET", []string{"path", file, "signature", sign(file, "read", "", ""), "signature_expiration", "soon"}, nil, 401},
		{"repeated signature", "GET", []string{"path", file, "signature", sign(file, "read", "", ""), "signature", "x"}, nil, 400},
		{"colon in username", "GET", []string{"path", file, "username", "a:b", "signature", sign(file, "read", "a:b", "")}, nil, 401},
		{"write signature", "POST", []string{"path", up, "signature", sign(up, "write", "", "")}, map[string]string{"Content-Type": octet}, 200},
		{"read signature on POST", "POST", []string{"path", up, "signature", sign(up, "read", "", "")}, map[string]string{"Content-Type": octet}, 401},
		{"token on POST", "POST", []string{"path", up}, map[string]string{"Content-Type": octet, "X-Access-Token": tok}, 200},
		{"nothing on POST", "POST", []string{"path", up}, map[string]string{"Content-Type": octet}, 401},
	} {
		r := e.do(t, tc.method, q(tc.query...), tc.hdr, strings.NewReader("x"))
		if tc.status == 200 {
			if r.status != 200 {
				t.Errorf("%s: got %d %s, want 200", tc.name, r.status, r.body)
			}
			continue
		}
		wantError(t, r, tc.status, tc.name)
	}

	// The message E2B's SDK tests check, word for word.
	r := e.do(t, "GET", q("path", file, "signature", sign(file, "read", "", past), "signature_expiration", past), nil, nil)
	if msg := wantError(t, r, 401, "expired"); msg != "signature is already expired" {
		t.Errorf("expired signature message: %q", msg)
	}
}

func TestSignedURLShape(t *testing.T) {
	// The SDK builds /files?path=<encodeURIComponent(path)>&signature=...:
	// the signature covers the decoded value.
	const tok = "t"
	e := newEnv(t, currentUserName(t), 0)
	e.setToken(tok)
	file := filepath.Join(t.TempDir(), "a b&c=d+e.txt")
	mustWrite(t, file, "x")
	raw := "path=" + strings.ReplaceAll(url.QueryEscape(file), "+", "%20") + "&signature=" + url.QueryEscape(auth.Sign(file, "read", "", tok, 0))
	res, err := e.client.Get(e.url + "?" + raw)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("signed URL with special characters: %d", res.StatusCode)
	}
}

func TestUsers(t *testing.T) {
	u := requireTestUser(t)
	e := newEnv(t, "root", 0)
	dir := t.TempDir()
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(u.Name+":"))

	for _, tc := range []struct {
		name  string
		query []string
		hdr   map[string]string
		uid   uint32
	}{
		{"default user", nil, nil, 0},
		{"username parameter", []string{"username", u.Name}, nil, u.UID},
		{"basic auth", nil, map[string]string{"Authorization": basic}, u.UID},
		{"parameter over basic auth", []string{"username", "root"}, map[string]string{"Authorization": basic}, 0},
	} {
		target := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		hdr := map[string]string{"Content-Type": octet}
		for k, v := range tc.hdr {
			hdr[k] = v
		}
		wantUploaded(t, e.do(t, "POST", q(append(tc.query, "path", target)...), hdr, strings.NewReader("x")), tc.name)
		if uid := ownerOf(t, target); uid != tc.uid {
			t.Errorf("%s: file owned by %d, want %d", tc.name, uid, tc.uid)
		}
	}
	wantError(t, e.do(t, "POST", q("path", filepath.Join(dir, "x"), "username", "no-such-user-nestbox"), map[string]string{"Content-Type": octet}, strings.NewReader("x")), 401, "unknown user")
	wantError(t, e.do(t, "GET", q("path", "/etc/hostname"), map[string]string{"Authorization": "Basic %%%"}, nil), 400, "bad basic auth")
	e.settings.Apply(settings.Update{DefaultUser: "no-such-user-nestbox"})
	wantError(t, e.do(t, "GET", q("path", "/etc/hostname"), nil, nil), 401, "unknown default user")
}
