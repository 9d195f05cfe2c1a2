package server

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"

	"nestbox.dev/internal/e2bcompat"
	"nestbox.dev/internal/store"
)

// envdPort is where envd listens in every capsule.
const envdPort = 49983

// trafficTokenHeader carries a private capsule's traffic access token
// (E2B's name; Go canonicalises it).
const trafficTokenHeader = "E2b-Traffic-Access-Token"

// hostRoute matches a {port}-{capsuleID}.{rest} host name (port removed).
var hostRoute = regexp.MustCompile(`^([0-9]{1,5})-([a-z0-9]+)\.(.+)$`)

// sandboxTarget finds where a request addressed to a capsule rather than
// to the API goes, the way E2B's SDKs address them: the E2b-Sandbox-Id and
// E2b-Sandbox-Port headers, a {port}-{id}.{domain} host name, or a
// header-less /files URL signed with a capsule's token. ok is false for
// API requests. id is "" for the signed form, which names no capsule:
// serveSandbox finds it (signedTarget) after the per-address rate limit,
// since that scans the token of every running capsule. Only requests whose Host is one of ours are sandbox
// traffic (sandboxHost): a page that rebinds its own name to a listener on
// 127.0.0.1 sends its own name as Host, and reaches nothing.
func (s *Server) sandboxTarget(r *http.Request) (id string, port int, ok bool) {
	host, ok := s.sandboxHost(r.Host)
	if !ok {
		return "", 0, false
	}
	if id = r.Header.Get("E2b-Sandbox-Id"); id != "" {
		port = envdPort
		if v := r.Header.Get("E2b-Sandbox-Port"); v != "" {
			if port, ok = parsePort(v); !ok {
				return id, 0, true // answered as a sandbox that is not there
			}
		}
		return id, port, true
	}
	if m := hostRoute.FindStringSubmatch(host); m != nil && s.routedDomain(m[3]) {
		port, _ = parsePort(m[1]) // a bad port is answered as a sandbox that is not there
		return m[2], port, true
	}
	if r.URL.Path == "/files" && e2bcompat.SignedFileRequest(r.URL.Query()) {
		return "", envdPort, true
	}
	return "", 0, false
}

// sandboxHost reports whether a request's Host may carry sandbox traffic,
// and returns it lower-cased without its port and trailing dot: localhost
// and its subdomains, IP literals, the sandbox domain and its subdomains,
// and the host of the API's public URL.
func (s *Server) sandboxHost(hostport string) (string, bool) {
	host := strings.ToLower(hostport)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	switch {
	case host == "":
		return "", false
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		return host, true
	case s.domain != "" && (host == s.domain || strings.HasSuffix(host, "."+s.domain)):
		return host, true
	case s.publicHost != "" && host == s.publicHost:
		return host, true
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && a.Zone() == "" {
		return host, true
	}
	return "", false
}

// routedDomain reports whether the rest of a {port}-{id}.{rest} host name
// is one host routing serves: the configured sandbox domain, or localhost.
// Without a configured domain no other name is routed, whatever it looks
// like.
func (s *Server) routedDomain(rest string) bool {
	return rest == "localhost" || (s.domain != "" && rest == s.domain)
}

// domainHost is the host part of a configured domain ("example.com:8443"
// gives "example.com"), lower-cased.
func domainHost(d string) string {
	d = strings.ToLower(d)
	if h, _, err := net.SplitHostPort(d); err == nil {
		d = h
	}
	return strings.TrimSuffix(d, ".")
}

// signedTarget returns the running capsule whose token signed r's URL, or
// "" if none did. The header-less form names no capsule, so the signature
// is checked against the token of each running capsule, from an in-memory
// index (tokenIndex), not the store.
func (s *Server) signedTarget(r *http.Request) string {
	q := r.URL.Query()
	id, err := s.tokens.find(r.Context(), func(token string) bool {
		return e2bcompat.SignatureMatches(r.Method, q, token)
	})
	if err != nil {
		s.log.Warn("route a signed URL", "err", err)
	}
	return id
}

// serveSandbox forwards a request addressed to a capsule. No API key is
// needed: envd checks its own access token, and ports are the capsule's
// business unless it is private (a traffic access token). A capsule that
// is not running answers 502 with the JSON body E2B's proxy sends.
func (s *Server) serveSandbox(w http.ResponseWriter, r *http.Request, id string, port int) {
	if !s.limiter.allow(clientIP(r)) {
		w.Header().Set("Retry-After", "1")
		writeE2BError(w, http.StatusTooManyRequests, "too many requests to sandboxes from this address; slow down")
		return
	}
	if id == "" {
		id = s.signedTarget(r)
	}
	if id == "" || port == 0 {
		writeSandboxError(w, http.StatusBadGateway, id, "The sandbox was not found")
		return
	}
	// Route resumes a paused capsule created with auto-resume and waits
	// for it; a paused one without auto-resume gets E2B's answer for a
	// paused sandbox, the same 502 as a missing one (/health reads 502
	// while paused). The traffic token is checked first: traffic the
	// capsule would refuse must not wake it.
	_, h, err := s.life.Route(r.Context(), id, func(c store.Capsule) error {
		if c.TrafficAccessToken == "" || port == envdPort {
			return nil
		}
		got := r.Header.Get(trafficTokenHeader)
		if got == "" {
			return errTrafficToken{"this sandbox's ports are private: send its traffic access token in the " + trafficTokenHeader + " header"}
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(c.TrafficAccessToken)) != 1 {
			return errTrafficToken{"invalid traffic access token"}
		}
		return nil
	})
	var tokenErr errTrafficToken
	if errors.As(err, &tokenErr) {
		writeSandboxError(w, http.StatusForbidden, id, tokenErr.msg)
		return
	}
	if err != nil {
		writeSandboxError(w, http.StatusBadGateway, id, "The sandbox was not found")
		return
	}
	if err := s.proxy.forward(w, r, id, port, true, h); err != nil {
		writeSandboxError(w, http.StatusBadGateway, id, err.Error())
	}
}

// errTrafficToken is a request to a private port without the right
// traffic access token.
type errTrafficToken struct{ msg string }

func (e errTrafficToken) Error() string { return e.msg }

// writeSandboxError answers in the JSON shape of E2B's proxy,
// {"sandboxId", "message", "code"}: 502 for a sandbox it cannot reach
// (the SDK reads it as "not running"), 403 for a private capsule's port
// reached without its traffic access token.
func writeSandboxError(w http.ResponseWriter, status int, id, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"sandboxId": id, "message": msg, "code": status})
}

// writeE2BError answers in E2B's error shape, {"code": int, "message"}.
func writeE2BError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"code": status, "message": msg})
}
