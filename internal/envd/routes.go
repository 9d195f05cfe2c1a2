package envd

import (
	"net/http"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/filesystempb/filesystempbconnect"
	"nestbox.dev/internal/proto/processpb/processpbconnect"
)

// Handler maps envd's whole API. Every route but GET /health and /files
// requires the access token once /init has set one; /files also accepts a
// URL signature and checks it itself.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	opts := []connect.HandlerOption{connect.WithInterceptors(&tokenInterceptor{settings: s.settings})}
	mux.Handle(processpbconnect.NewProcessHandler(s.proc, opts...))
	mux.Handle(filesystempbconnect.NewFilesystemHandler(s.fs, opts...))

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
