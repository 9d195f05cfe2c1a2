package server

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"

	"nestbox.dev/internal/e2bcompat"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/store"
)

// envdPort is where envd listens in every capsule.
const envdPort = 49983

// hostRoute matches a {port}-{capsuleID}.{domain} host name.
var hostRoute = regexp.MustCompile(`^([0-9]{1,5})-([a-z0-9]+)\.(.+)$`)

// sandboxTarget finds where a request addressed to a capsule rather than
// to the API goes, the way E2B's SDKs address them: the E2b-Sandbox-Id and
// E2b-Sandbox-Port headers, a {port}-{id}.{domain} host name, or a
// header-less /files URL signed with a capsule's token. ok is false for
// API requests.
func (s *Server) sandboxTarget(r *http.Request) (id string, port int, ok bool) {
	if id = r.Header.Get("E2b-Sandbox-Id"); id != "" {
		port = envdPort
		if v := r.Header.Get("E2b-Sandbox-Port"); v != "" {
			if port, ok = parsePort(v); !ok {
				return id, 0, true // answered as a sandbox that is not there
			}
		}
		return id, port, true
	}
	if m := hostRoute.FindStringSubmatch(strings.ToLower(r.Host)); m != nil && s.hostRouted(m[2], m[3]) {
		port, _ = parsePort(m[1]) // a bad port is answered as a sandbox that is not there
		return m[2], port, true
	}
	if r.URL.Path == "/files" && e2bcompat.SignedFileRequest(r.URL.Query()) {
		return s.signedTarget(r), envdPort, true
	}
	return "", 0, false
}

// hostRouted reports whether a {port}-{id}.{domain} host name is sandbox
// traffic: under the configured sandbox domain, whatever the ID (an
// unknown one is answered 502); with no domain configured, under any
// domain, but only with an ID of the capsules' shape.
func (s *Server) hostRouted(id, domain string) bool {
	if s.cfg.Domain == "" {
		return len(id) == lifecycle.IDLength
	}
	h, _, _ := strings.Cut(domain, ":")
	d, _, _ := strings.Cut(s.cfg.Domain, ":")
	return h == strings.ToLower(d)
}

// signedTarget returns the running capsule whose token signed r's URL, or
// "" if none did.
func (s *Server) signedTarget(r *http.Request) string {
	q := r.URL.Query()
	var id string
	err := s.life.EachRunning(r.Context(), func(c store.Capsule) bool {
		if e2bcompat.SignatureMatches(r.Method, q, c.AccessToken) {
			id = c.ID
			return false
		}
		return true
	})
	if err != nil {
		s.log.Warn("route a signed URL", "err", err)
	}
	return id
}

// serveSandbox forwards a request addressed to a capsule. No API key is
// needed: envd checks its own access token, and ports are the capsule's
// business. A capsule that is not running answers 502 with the JSON body
// E2B's proxy sends.
func (s *Server) serveSandbox(w http.ResponseWriter, r *http.Request, id string, port int) {
	var (
		h   lifecycle.Host
		err error
	)
	if port != 0 {
		_, h, err = s.life.Route(r.Context(), id)
	}
	if port == 0 || err != nil {
		writeSandboxGone(w, id, "The sandbox was not found")
		return
	}
	if err := s.proxy.forward(w, r, id, port, true, h); err != nil {
		writeSandboxGone(w, id, err.Error())
	}
}

// writeSandboxGone answers 502 as E2B's proxy does for a sandbox it cannot
// reach: the SDK reads it as "not running".
func writeSandboxGone(w http.ResponseWriter, id, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadGateway)
	json.NewEncoder(w).Encode(map[string]any{"sandboxId": id, "message": msg, "code": http.StatusBadGateway})
}
