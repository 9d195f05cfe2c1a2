package envd

import (
	"net/http"

	"nestbox.dev/internal/proto/filesystempb/filesystempbconnect"
	"nestbox.dev/internal/proto/processpb/processpbconnect"
)

// Handler maps envd's whole API. Every route but GET /health and /files
// requires the access token once /init has set one; /files also accepts a
// URL signature and checks it itself.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// The token is checked before Connect sees the request, so a streaming
	// RPC without it is refused with HTTP 401 like a unary one (E2B's envd
	// does the same), not with an error inside a 200 stream.
	path, h := processpbconnect.NewProcessHandler(s.proc)
	mux.Handle(path, s.requireToken(s.inUse(h)))
	path, h = filesystempbconnect.NewFilesystemHandler(s.fs)
	mux.Handle(path, s.requireToken(s.inUse(h)))

	mux.Handle("/files", s.inUse(s.files))
	mux.HandleFunc("GET /health", s.handleHealth)
	mux.Handle("GET /envs", s.requireToken(http.HandlerFunc(s.handleEnvs)))
	mux.Handle("GET /metrics", s.requireToken(http.HandlerFunc(s.handleMetrics)))
	mux.Handle("POST /init", s.requireToken(s.inUse(http.HandlerFunc(s.handleInit))))
	mux.Handle("POST /snapshot/prepare", s.requireToken(http.HandlerFunc(s.handlePrepare)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// inUse tells the port forwarder that the sandbox is in use before h
// serves: processes, files and /init are a user's work, after which a
// loopback server may start listening. Health checks and metrics
// readings, which the host makes of idle sandboxes too, do not count.
func (s *Server) inUse(h http.Handler) http.Handler {
	if s.fwd == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fwd.Kick()
		h.ServeHTTP(w, r)
	})
}
