package server

import (
	"net/http"
	"strings"

	"nestbox.dev/internal/errdefs"
)

// Handler maps the control plane's whole HTTP surface. docs/api.md and
// openapi.yaml describe it; a test checks the spec against this table.
//
//	GET    /health                                   no auth: 200 when ready
//	GET    /openapi.yaml                             no auth: the API's spec
//	POST   /v1/capsules                              202 create (starting)
//	GET    /v1/capsules                              list: ?status, ?metadata.K=V, ?limit, ?cursor
//	GET    /v1/capsules/{id}                         get; ?wait=STATUS&timeout=D blocks
//	DELETE /v1/capsules/{id}                         202 destroy (stopping)
//	POST   /v1/capsules/{id}/pause                   202 pause (pausing); 409 if paused
//	POST   /v1/capsules/{id}/resume                  202 resume (resuming); 409 unless paused
//	POST   /v1/capsules/{id}/fork                    202 fork {count, timeout_seconds}: the source and each fork (starting)
//	POST   /v1/capsules/{id}/timeout                 extend the lifetime
//	GET    /v1/capsules/{id}/metrics                 resource use
//	GET    /v1/capsules/{id}/events                  status history
//	POST   /v1/capsules/{id}/exec                    one-shot or background command
//	GET    /v1/capsules/{id}/exec/stream             WebSocket: a command's output live
//	GET    /v1/capsules/{id}/processes               running processes
//	POST   /v1/capsules/{id}/processes/{pid}/signal  signal a process
//	GET    /v1/capsules/{id}/pty                     WebSocket: an interactive terminal
//	GET    /v1/capsules/{id}/files                   download ?path
//	PUT    /v1/capsules/{id}/files                   upload ?path (raw body, streamed)
//	DELETE /v1/capsules/{id}/files                   remove ?path
//	GET    /v1/capsules/{id}/files/list              list ?path&depth
//	GET    /v1/capsules/{id}/files/stat              stat ?path
//	POST   /v1/capsules/{id}/files/mkdir             make a directory
//	POST   /v1/keys                                  201 create an API key
//	GET    /v1/keys                                  list the team's keys
//	DELETE /v1/keys/{id}                             revoke a key
//	GET    /v1/templates                             templates
//	POST   /v1/hosts/sandbox-events                  host token: an agent's event
//	*      /proxy/{id}/{port}/{path...}              HTTP to a port of a capsule
//
// It also serves E2B's dialect (internal/e2bcompat: /sandboxes,
// /v2/sandboxes) and routes requests addressed to a capsule the ways E2B's
// SDKs address them (traffic.go). A request no route takes gets 405 with
// Allow when its path has other methods, else 404, in E2B's error shape
// under E2B's prefixes and in the API's elsewhere (fallback.go).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	var raw []route
	for _, r := range s.routes() {
		if r.prefix != "" {
			raw = append(raw, r)
			continue
		}
		mux.HandleFunc(r.pattern, r.handler)
	}
	for _, r := range s.e2b.Routes() {
		mux.HandleFunc(r.Pattern, r.Handler)
	}
	// No catch-all pattern: it would take every method of every path,
	// and hide from the mux which methods a path has (405).
	fb := &fallback{mux: mux, e2bPrefixes: s.e2b.Prefixes()}
	// Each branch returns the route label of the request's metrics: its
	// pattern, never its path (instrument.go).
	return s.metrics.instrument(func(w http.ResponseWriter, r *http.Request) string {
		// Traffic for a capsule (E2B's routing) comes first: its paths
		// (/health, /files) are the capsule's, not the API's.
		if id, port, ok := s.sandboxTarget(r); ok {
			s.serveSandbox(w, r, id, port)
			return routeSandboxTraffic
		}
		if !s.ready() {
			w.Header().Set("Retry-After", "5")
			s.writeError(w, r, errdefs.Unavailable("Nestbox is starting (building templates); try again shortly"))
			return routeUnready
		}
		for _, rt := range raw {
			if strings.HasPrefix(r.URL.Path, rt.prefix) {
				rt.handler(w, r)
				return rt.pattern
			}
		}
		if !fb.serves(r) {
			fb.ServeHTTP(w, r)
			return routeUnmatched
		}
		// The mux sets r.Pattern to the pattern it matched.
		mux.ServeHTTP(w, r)
		return r.Pattern
	})
}

func (s *Server) ready() bool {
	if s.cfg.Ready == nil {
		return true
	}
	select {
	case <-s.cfg.Ready:
		return true
	default:
		return false
	}
}

type route struct {
	pattern string
	handler http.HandlerFunc
	// prefix, if set, matches the route by this prefix of the path as it
	// was sent, before the mux (which would clean the path and redirect):
	// the port proxy's paths are the capsule's. pattern documents it.
	prefix string
}

// routes is the table behind Handler, also read by the OpenAPI test.
func (s *Server) routes() []route {
	a := s.authenticated
	return []route{
		{"GET /health", s.health, ""},
		{"GET /openapi.yaml", s.openAPI, ""},
		{"POST /v1/capsules", a(s.createCapsule), ""},
		{"GET /v1/capsules", a(s.listCapsules), ""},
		{"GET /v1/capsules/{id}", a(s.getCapsule), ""},
		{"DELETE /v1/capsules/{id}", a(s.deleteCapsule), ""},
		{"POST /v1/capsules/{id}/pause", a(s.pauseCapsule), ""},
		{"POST /v1/capsules/{id}/resume", a(s.resumeCapsule), ""},
		{"POST /v1/capsules/{id}/fork", a(s.forkCapsule), ""},
		{"POST /v1/capsules/{id}/timeout", a(s.setTimeout), ""},
		{"GET /v1/capsules/{id}/metrics", a(s.capsuleMetrics), ""},
		{"GET /v1/capsules/{id}/events", a(s.capsuleEvents), ""},
		{"POST /v1/capsules/{id}/exec", a(s.exec), ""},
		{"GET /v1/capsules/{id}/exec/stream", a(s.execStream), ""},
		{"GET /v1/capsules/{id}/processes", a(s.listProcesses), ""},
		{"POST /v1/capsules/{id}/processes/{pid}/signal", a(s.signalProcess), ""},
		{"GET /v1/capsules/{id}/pty", a(s.pty), ""},
		{"GET /v1/capsules/{id}/files", a(s.fileRoute(s.download)), ""},
		{"PUT /v1/capsules/{id}/files", a(s.fileRoute(s.upload)), ""},
		{"DELETE /v1/capsules/{id}/files", a(s.fileRoute(s.removeFile)), ""},
		{"GET /v1/capsules/{id}/files/list", a(s.fileRoute(s.listDir)), ""},
		{"GET /v1/capsules/{id}/files/stat", a(s.fileRoute(s.stat)), ""},
		{"POST /v1/capsules/{id}/files/mkdir", a(s.makeDir), ""},
		{"POST /v1/keys", a(s.createKey), ""},
		{"GET /v1/keys", a(s.listKeys), ""},
		{"DELETE /v1/keys/{id}", a(s.deleteKey), ""},
		{"GET /v1/templates", a(s.listTemplates), ""},
		{"POST /v1/hosts/sandbox-events", s.hostAuthenticated(s.hostEvent), ""},
		{"* /proxy/{id}/{port}/{path...}", a(s.serveProxy), "/proxy/"},
	}
}
