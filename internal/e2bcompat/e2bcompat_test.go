package e2bcompat

import (
	"errors"
	"net/url"
	"slices"
	"testing"

	"nestbox.dev"
	"nestbox.dev/internal/envd/auth"
	"nestbox.dev/internal/errdefs"
)

func TestParseList(t *testing.T) {
	for _, tc := range []struct {
		query    string
		running  bool // the filter can match running sandboxes
		paused   bool // and paused ones
		limit    int
		oldest   bool
		metadata map[string]string
	}{
		{"", true, true, defaultListLimit, false, nil},
		{"state=running,paused&limit=5&order=asc", true, true, 5, true, nil},
		{"state=running&state=paused", true, true, defaultListLimit, false, nil},
		{"state=paused", false, true, defaultListLimit, false, nil},
		{"state=running", true, false, defaultListLimit, false, nil},
		{"metadata=user%3Dabc%26app%3Dprod", true, true, defaultListLimit, false, map[string]string{"user": "abc", "app": "prod"}},
		{"metadata=k%3Da%2Bb%2520c", true, true, defaultListLimit, false, map[string]string{"k": "a b c"}},
	} {
		q, _ := url.ParseQuery(tc.query)
		f, err := parseList(q)
		if err != nil {
			t.Errorf("parseList(%q): %v", tc.query, err)
			continue
		}
		if slices.Contains(f.Statuses, nestbox.StatusRunning) != tc.running || slices.Contains(f.Statuses, nestbox.StatusPaused) != tc.paused || f.Limit != tc.limit || f.Oldest != tc.oldest || len(f.Metadata) != len(tc.metadata) {
			t.Errorf("parseList(%q) = %+v", tc.query, f)
		}
		for k, v := range tc.metadata {
			if f.Metadata[k] != v {
				t.Errorf("parseList(%q): metadata %q = %q, want %q", tc.query, k, f.Metadata[k], v)
			}
		}
	}
	for _, bad := range []string{"limit=0", "limit=101", "limit=x", "order=sideways", "state=frozen", "startedAfter=yesterday", "metadata=%25zz"} {
		q, _ := url.ParseQuery(bad)
		if _, err := parseList(q); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("parseList(%q): %v, want invalid", bad, err)
		}
	}
}

func TestSignatureMatches(t *testing.T) {
	const token = "tok"
	q := func(path, op, user string, exp int64) url.Values {
		v := url.Values{"path": {path}, "signature": {auth.Sign(path, op, user, token, exp)}}
		if user != "" {
			v.Set("username", user)
		}
		if exp != 0 {
			v.Set("signature_expiration", "1795863515")
		}
		return v
	}
	read := q("/home/user/a.txt", auth.OpRead, "", 0)
	if !SignedFileRequest(read) || !SignatureMatches("GET", read, token) {
		t.Fatal("a valid read signature does not match")
	}
	for _, tc := range []struct {
		name, method string
		q            url.Values
		token        string
	}{
		{"another token", "GET", read, "other"},
		{"no token", "GET", read, ""},
		{"a read signature used to write", "POST", read, token},
		{"another user", "GET", func() url.Values { v := q("/a", auth.OpRead, "root", 0); v.Set("username", "user"); return v }(), token},
		{"another path", "GET", func() url.Values { v := q("/a", auth.OpRead, "", 0); v.Set("path", "/b"); return v }(), token},
		{"expiry changed", "GET", func() url.Values {
			v := q("/a", auth.OpRead, "", 1795863515)
			v.Set("signature_expiration", "1795863516")
			return v
		}(), token},
		{"expiry not a number", "GET", func() url.Values { v := q("/a", auth.OpRead, "", 0); v.Set("signature_expiration", "x"); return v }(), token},
	} {
		if SignatureMatches(tc.method, tc.q, tc.token) {
			t.Errorf("%s: the signature matches", tc.name)
		}
	}
	if w := q("/a", auth.OpWrite, "root", 1795863515); !SignatureMatches("POST", w, token) {
		t.Error("a valid write signature with user and expiry does not match")
	}
}

func FuzzParseList(f *testing.F) {
	for _, s := range []string{"", "state=running&limit=3", "metadata=a%3Db", "order=asc&nextToken=x", "startedAfter=2026-01-01T00:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		fl, err := parseList(q)
		if err == nil && (fl.Limit < 1 || fl.Limit > maxListLimit) {
			t.Fatalf("query %q: limit %d accepted", s, fl.Limit)
		}
	})
}
