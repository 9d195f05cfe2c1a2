package files

import (
	"encoding/json"
	"net/http"

	"nestbox.dev/internal/errdefs"
)

// writeError answers with E2B's JSON error body, {"code": <status>,
// "message": ...}, the status following the error's kind. E2B's SDK maps
// the status to its error classes (404 FileNotFoundError, 507
// NotEnoughSpaceError, ...).
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := errdefs.HTTPStatus(err)
	if status == 499 {
		return // the client went away: nobody reads an answer
	}
	if status >= 500 {
		h.log.Error("files request failed", "method", r.Method, "query", r.URL.RawQuery, "status", status, "err", err)
	}
	writeStatus(w, status, err.Error())
}

func writeStatus(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"code": status, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	// A download that failed before its body must not look like one.
	w.Header().Del("Content-Disposition")
	w.Header().Del("Content-Encoding")
	w.WriteHeader(status)
	// The status line is out; a write error means the client is gone.
	_ = json.NewEncoder(w).Encode(v)
}
