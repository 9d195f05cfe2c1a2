package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/lifecycle"
)

// forkCapsule is POST /v1/capsules/{id}/fork: 202 with the source and
// each fork starting (or the error that kept it from being made); with
// ?wait=true, 200 once every fork has settled (running or error), 202 if
// one had not by ?timeout.
func (s *Server) forkCapsule(w http.ResponseWriter, r *http.Request) {
	var req nestbox.ForkRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.TimeoutSeconds < 0 {
		s.writeError(w, r, errdefs.Invalid("timeout_seconds %d: want 0 (300 s) or more", req.TimeoutSeconds))
		return
	}
	wait, d, err := waitParams(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	src, forks, err := s.life.Fork(r.Context(), team(r), r.PathValue("id"), lifecycle.ForkOptions{
		Count:   req.Count,
		Timeout: time.Duration(req.TimeoutSeconds) * time.Second,
	})
	s.record(r, teamEntry("capsule.fork", r.PathValue("id"), forkMetadata(forks)), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusAccepted
	if wait {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		settled := true
		for i, f := range forks {
			if f.Err != nil {
				continue
			}
			c, err := s.life.WaitSettled(ctx, team(r), f.Capsule.ID)
			if err != nil {
				settled = false
				break
			}
			forks[i].Capsule = c
		}
		if settled {
			status = http.StatusOK
		}
	}
	resp := nestbox.ForkResponse{Source: src, Forks: make([]nestbox.ForkResult, len(forks))}
	for i, f := range forks {
		if f.Err != nil {
			resp.Forks[i].Error = &nestbox.ErrorDetail{Code: errdefs.Code(f.Err), Message: f.Err.Error()}
			continue
		}
		resp.Forks[i].Capsule = &f.Capsule
	}
	writeJSON(w, status, resp)
}

// forkMetadata counts the forks made, for the audit entry: a count, not
// their IDs, so that a large fork stays within the metadata's bounds.
func forkMetadata(forks []lifecycle.ForkResult) map[string]string {
	n := 0
	for _, f := range forks {
		if f.Err == nil {
			n++
		}
	}
	return map[string]string{"forks": strconv.Itoa(n)}
}
