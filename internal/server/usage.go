package server

import (
	"net/http"

	"nestbox.dev/internal/usage"
)

// capsuleUsage is GET /v1/capsules/usage: the caller's team's usage per
// UTC day and in total, ?from and ?to (YYYY-MM-DD, both included; by
// default the 30 days ending today), at most 92 days.
func (s *Server) capsuleUsage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now := s.cfg.Now()
	from, to, err := usage.ParseRange(q.Get("from"), q.Get("to"), now)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rep, err := usage.Report(r.Context(), s.store, team(r), from, to, now)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
