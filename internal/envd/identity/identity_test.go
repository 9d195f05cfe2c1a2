package identity

import (
	"encoding/base64"
	"errors"
	"net/http"
	"testing"

	"nestbox.dev/internal/errdefs"
)

func TestFromBasicAuth(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		header, name string
		ok, bad      bool
	}{
		{"", "", false, false},
		{"Bearer x", "", false, false},
		{"Basic " + b64("root:"), "root", true, false},
		{"basic " + b64("user:pw"), "user", true, false},
		{"Basic " + b64("user"), "user", true, false},
		{"Basic %%%", "", true, true},
		{"Basic " + b64(":"), "", true, true},
	} {
		name, ok, err := FromBasicAuth(tc.header)
		if name != tc.name || ok != tc.ok || (err != nil) != tc.bad {
			t.Errorf("FromBasicAuth(%q) = %q, %v, %v; want %q, %v, err=%v", tc.header, name, ok, err, tc.name, tc.ok, tc.bad)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("FromBasicAuth(%q): error kind %v, want invalid", tc.header, err)
		}
	}
}

func TestLookupAndHeader(t *testing.T) {
	root, err := Lookup("root")
	if err != nil || root.UID != 0 || root.Home == "" {
		t.Fatalf("Lookup(root) = %+v, %v", root, err)
	}
	if _, err := Lookup("no-such-user-nestbox"); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Fatalf("unknown user: got %v, want unauthenticated", err)
	}
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("root:")))
	if u, err := FromHeader(h, "no-such-user-nestbox"); err != nil || u.Name != "root" {
		t.Fatalf("FromHeader with Basic root: %+v, %v", u, err)
	}
	if _, err := FromHeader(http.Header{}, "no-such-user-nestbox"); err == nil {
		t.Fatal("FromHeader fell back to an unknown default user without error")
	}
}

func TestResolve(t *testing.T) {
	u := User{Name: "user", Home: "/home/user"}
	for in, want := range map[string]string{
		"a.txt":       "/home/user/a.txt",
		"~":           "/home/user",
		"~/x/../y":    "/home/user/y",
		"/etc//hosts": "/etc/hosts",
		"../../etc":   "/etc",
	} {
		got, err := u.Resolve(in)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a\x00b"} {
		if _, err := u.Resolve(in); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Resolve(%q): got %v, want invalid", in, err)
		}
	}
}
