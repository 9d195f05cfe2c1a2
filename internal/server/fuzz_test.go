package server

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/apikey"
	"nestbox.dev/internal/envd/auth"
	"nestbox.dev/internal/store"
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

// FuzzRoute: whatever the Host, routing headers, path and query of a
// request, the traffic router never panics and routes to a capsule only a
// request whose Host is one of the allowed forms (localhost and its
// subdomains, an IP literal, the sandbox domain and its subdomains, the
// public URL's host); by host name alone only {port}-{id}.localhost and
// {port}-{id}.{domain}. Whatever credentials the request carries, what is
// forwarded holds none of the platform's.
func FuzzRoute(f *testing.F) {
	const (
		domain = "nestbox.test"
		public = "api.example.com"
		id     = "aaaaaaaaaaaaaaaaaaaa"
		token  = "tok"
	)
	sig := auth.Sign("/f", auth.OpRead, "", token, 0)
	for _, s := range []struct{ host, sbx, port, path, query, authz string }{
		{"localhost:3000", id, "49983", "/files", "", "Bearer nbx_0123456789abcdef0123456789abcdef01234567"},
		{"8080-" + id + ".localhost", "", "", "/", "", "Basic dXNlcjpwYXNz"},
		{"8080-" + id + ".nestbox.test:443", "", "", "/x", "", ""},
		{"8080-" + id + ".evil.example", "", "", "/", "", ""},
		{"evil.example", id, "8080", "/", "", ""},
		{"[::1]:3000", id, "0x50", "/health", "", ""},
		{"127.0.0.1", "", "", "/files", "path=/f&signature=" + sig, ""},
		{"evil.example", "", "", "/files", "path=/f&signature=" + sig, ""},
		{"API.EXAMPLE.COM.", id, "", "/", "", "basic Zm9vOg=="},
		{"8080-" + id + ".localhost.evil.example", "", "", "/", "", ""},
		{"localhost", "", "", "/files", url.Values{"path": {"/f"}, "username": {"user"}, "signature_expiration": {"4102444800"},
			"signature": {auth.Sign("/f", auth.OpRead, "user", token, 4102444800)}}.Encode(), ""},
		{"localhost", "", "", "/files", "path=/f&signature=v1_forged", ""},
		{"localhost", "", "", "/files", "path=/other&signature=" + url.QueryEscape(sig), ""},
	} {
		f.Add(s.host, s.sbx, s.port, s.path, s.query, s.authz)
	}
	running := func(ctx context.Context, fn func(store.Capsule) bool) error {
		fn(store.Capsule{Capsule: nestbox.Capsule{ID: id}, AccessToken: token})
		return nil
	}
	servers := map[string]*Server{}
	for _, d := range []string{"", domain} {
		s := &Server{cfg: Config{Domain: d}, log: slog.New(slog.DiscardHandler), domain: domainHost(d), publicHost: public}
		s.tokens = &tokenIndex{running: running, now: time.Now} // every 0: always fresh, never waits
		servers[d] = s
	}
	f.Fuzz(func(t *testing.T, host, sbx, port, path, query, authz string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		r.URL.Path, r.URL.RawQuery = path, query
		if sbx != "" {
			r.Header.Set("E2b-Sandbox-Id", sbx)
		}
		if port != "" {
			r.Header.Set("E2b-Sandbox-Port", port)
		}
		for d, s := range servers {
			gotID, _, ok := s.sandboxTarget(r)
			if !ok {
				continue
			}
			if !allowedHostRef(host, d, public) {
				t.Fatalf("domain %q: Host %q routed to %q; not an allowed form", d, host, gotID)
			}
			if sbx == "" && !(path == "/files" && strings.Contains(query, "signature=")) {
				h := strings.TrimSuffix(strings.ToLower(hostOnly(host)), ".")
				if !strings.HasSuffix(h, ".localhost") && (d == "" || !strings.HasSuffix(h, "."+d)) {
					t.Fatalf("domain %q: Host %q host-routed to %q", d, host, gotID)
				}
				if !strings.Contains(h, "-"+gotID+".") {
					t.Fatalf("domain %q: Host %q routed to %q, which it does not name", d, host, gotID)
				}
			}
			if gotID == "" {
				// A signed /files URL that names no capsule goes to the
				// capsule whose token made its signature, by envd's own
				// check of it (expiry aside: envd answers that), or to none.
				q := r.URL.Query()
				exp, _ := strconv.ParseInt(q.Get("signature_expiration"), 10, 64)
				valid := auth.CheckSignature(q.Get("signature"), q.Get("path"), auth.OpRead, q.Get("username"), token, q.Get("signature_expiration"), time.Unix(exp, 0)) == nil
				target := s.signedTarget(r)
				if valid && target != id {
					t.Fatalf("domain %q: signed URL %q of capsule %s routed to %q", d, query, id, target)
				}
				if !valid && target != "" {
					t.Fatalf("domain %q: signed URL %q, which no running capsule signed, routed to %q", d, query, target)
				}
			}
		}

		h := http.Header{}
		h.Set("Authorization", authz)
		h.Set("X-API-Key", authz)
		h.Set("Cookie", "nestbox_session="+authz+"; "+sbx)
		h.Set("E2b-Sandbox-Id", sbx)
		h.Set("E2b-Traffic-Access-Token", authz)
		stripCredentials(h)
		for _, name := range []string{"X-Api-Key", "E2b-Sandbox-Id", "E2b-Traffic-Access-Token"} {
			if _, ok := h[name]; ok {
				t.Fatalf("stripCredentials left %s", name)
			}
		}
		if strings.Contains(strings.ToLower(h.Get("Cookie")), cookiePrefix) && !strings.Contains(strings.ToLower(sbx), cookiePrefix) {
			t.Fatalf("stripCredentials left the platform's cookie: %q", h.Get("Cookie"))
		}
		if a := h.Get("Authorization"); a != "" {
			cred, ok := strings.CutPrefix(a, "Basic ")
			b, err := base64.StdEncoding.DecodeString(cred)
			user, pass, found := strings.Cut(string(b), ":")
			if !ok || err != nil || !found || pass != "" || user == "" {
				t.Fatalf("Authorization %q forwarded as %q: want none or Basic with a user and no password", authz, a)
			}
			if _, err := apikey.Parse(user); err == nil {
				t.Fatalf("Authorization %q forwarded an API key as the user", authz)
			}
		}
	})
}

// hostOnly drops a Host's port the way a reader of the header would.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// allowedHostRef is the allowed forms of a sandbox Host, written apart
// from the server's code.
func allowedHostRef(host, domain, public string) bool {
	for _, h := range []string{(&url.URL{Host: host}).Hostname(), hostOnly(host), host} {
		h = strings.TrimSuffix(strings.ToLower(h), ".")
		switch {
		case h == "":
		case h == "localhost" || strings.HasSuffix(h, ".localhost"):
			return true
		case domain != "" && (h == domain || strings.HasSuffix(h, "."+domain)):
			return true
		case h == public:
			return true
		case net.ParseIP(strings.Trim(h, "[]")) != nil:
			return true
		}
	}
	return false
}
