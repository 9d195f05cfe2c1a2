package agent

import (
	"encoding/json"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	"nestbox.dev/internal/metrics"
	"nestbox.dev/internal/proto/agentpb/agentpbconnect"
)

// Handler maps the agent's whole HTTP surface:
//
//	POST /nestbox.agent.v1.Agent/*      the Connect API (see proto/agent)
//	GET  /health                        200 while the agent serves (open)
//	GET  /metrics                       Prometheus metrics of the process
//	*    /proxy/{id}/{port}/{path...}   HTTP to a port of a sandbox
//
// Everything but GET /health needs the agent token (see authenticate).
// The proxy is matched before the mux, which would clean and redirect
// paths that the sandbox's server must see as they were sent.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(agentpbconnect.NewAgentHandler(service{a: a}, connect.WithInterceptors(a.prom.interceptor(a), gateInterceptor(&a.ops))))
	mux.Handle("GET /metrics", metrics.Handler(a.registry, a.log))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return authenticate(a.cfg.Token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/proxy/") {
			a.serveProxy(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// writeJSONError writes a JSON error body as E2B's clients expect it:
// {"code": <status>, "message": ..., extra fields}.
func writeJSONError(w http.ResponseWriter, code int, msg string, extra map[string]any) {
	body := map[string]any{"code": code, "message": msg}
	for k, v := range extra {
		body[k] = v
	}
	writeJSON(w, code, body)
}
