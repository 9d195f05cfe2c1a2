package server

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"nestbox.dev"
)

// FuzzParseProxyPath: any path either parses into a capsule and a valid
// port or is refused; it never panics.
func FuzzParseProxyPath(f *testing.F) {
	for _, s := range []string{"/proxy/abc/8080/", "/proxy/abc/8080", "/proxy//1/", "/proxy/a/+1/", "/proxy/a/0080/x", "/proxy/a/99999/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		id, port, ok := parseProxyPath(p)
		if ok && (id == "" || strings.Contains(id, "/") || port < 1 || port > 65535) {
			t.Fatalf("parseProxyPath(%q) = %q, %d: accepted a bad path", p, id, port)
		}
	})
}

// FuzzListQuery: any query string is parsed or refused with an error.
func FuzzListQuery(f *testing.F) {
	for _, s := range []string{"status=running,starting&limit=5", "metadata.a=b&cursor=x", "limit=0", "status=", "colour=red"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		r := httptest.NewRequest("GET", "/v1/capsules", nil)
		r.URL.RawQuery = q
		fl, err := parseListQuery(r)
		if err == nil && (fl.Limit < 0 || fl.Limit > 1000) {
			t.Fatalf("query %q: limit %d accepted", q, fl.Limit)
		}
	})
}

// FuzzDecodeCreate: any body is decoded into a create request or refused
// with an error of a known kind; it never panics.
func FuzzDecodeCreate(f *testing.F) {
	for _, s := range []string{`{}`, `{"template":"base","vcpus":2}`, `{"metadata":{"a":"b"}}`, `{"vcpus":"x"}`, `[`, `{"internet":null}`} {
		f.Add(s)
	}
	s := &Server{cfg: Config{MaxBodyBytes: 1 << 16}}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/v1/capsules", strings.NewReader(body))
		var req nestbox.CreateCapsuleRequest
		if err := s.decodeJSON(httptest.NewRecorder(), r, &req, true); err != nil {
			if code := http.StatusText(statusOf(err)); code == "" {
				t.Fatalf("body %q: error %v has no HTTP status", url.QueryEscape(body), err)
			}
		}
	})
}
