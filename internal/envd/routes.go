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
	mux.Handle(path, s.requireToken(h))
	path, h = filesystempbconnect.NewFilesystemHandler(s.fs)
	mux.Handle(path, s.requireToken(h))

	mux.Handle("/files", s.files)
	mux.HandleFunc("GET /health", s.handleHealth)
	mux.Handle("GET /envs", s.requireToken(http.HandlerFunc(s.handleEnvs)))
	mux.Handle("GET /metrics", s.requireToken(http.HandlerFunc(s.handleMetrics)))
	mux.Handle("POST /init", s.requireToken(http.HandlerFunc(s.handleInit)))
	mux.Handle("POST /snapshot/prepare", s.requireToken(http.HandlerFunc(s.handlePrepare)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}
