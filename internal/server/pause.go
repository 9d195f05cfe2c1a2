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

// pauseCapsule is POST /v1/capsules/{id}/pause: 202 with the capsule
// pausing (200 once settled with ?wait=true).
func (s *Server) pauseCapsule(w http.ResponseWriter, r *http.Request) {
	var req nestbox.PauseRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	opts := lifecycle.PauseOptions{Memory: req.Memory == nil || *req.Memory}
	s.transient(w, r, func(ctx context.Context) (nestbox.Capsule, error) {
		c, err := s.life.Pause(ctx, team(r), r.PathValue("id"), opts)
		s.record(r, teamEntry("capsule.pause", r.PathValue("id"), map[string]string{"memory": strconv.FormatBool(opts.Memory)}), err)
		return c, err
	})
}

// resumeCapsule is POST /v1/capsules/{id}/resume: 202 with the capsule
// resuming (200 once settled with ?wait=true).
func (s *Server) resumeCapsule(w http.ResponseWriter, r *http.Request) {
	var req nestbox.ResumeRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.TimeoutSeconds < 0 {
		s.writeError(w, r, errdefs.Invalid("timeout_seconds %d: want 0 (the lifetime left at the pause) or more", req.TimeoutSeconds))
		return
	}
	opts := lifecycle.ResumeOptions{
		Timeout:       time.Duration(req.TimeoutSeconds) * time.Second,
		DiscardMemory: req.Memory != nil && !*req.Memory,
	}
	s.transient(w, r, func(ctx context.Context) (nestbox.Capsule, error) {
		c, err := s.life.Resume(ctx, team(r), r.PathValue("id"), opts)
		s.record(r, teamEntry("capsule.resume", r.PathValue("id"), nil), err)
		return c, err
	})
}

// waitParams reads ?wait=true|false and ?timeout=D (at most maxWait,
// default defaultWait) of a route that can wait for a change to end.
func waitParams(r *http.Request) (bool, time.Duration, error) {
	q := r.URL.Query()
	wait := false
	if v := q.Get("wait"); v != "" {
		var err error
		if wait, err = strconv.ParseBool(v); err != nil {
			return false, 0, errdefs.Invalid("wait %q: want true or false", v)
		}
	}
	d, err := waitTimeout(q.Get("timeout"))
	return wait, d, err
}

// waitTimeout parses a ?timeout= of a waiting route: "" is defaultWait,
// at most maxWait.
func waitTimeout(v string) (time.Duration, error) {
	if v == "" {
		return defaultWait, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > maxWait {
		return 0, errdefs.Invalid("timeout %q: want a duration up to %s, e.g. 30s", v, maxWait)
	}
	return d, nil
}

// transient starts a change with start and answers 202 with the capsule;
// with ?wait=true it first waits (at most ?timeout, default 60 s) until
// the change has ended, and answers 200 with the capsule as it ended
// (202 if it still had not).
func (s *Server) transient(w http.ResponseWriter, r *http.Request, start func(context.Context) (nestbox.Capsule, error)) {
	wait, d, err := waitParams(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := start(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusAccepted
	if wait {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		if c, err = s.life.WaitSettled(ctx, team(r), c.ID); err != nil {
			s.writeError(w, r, err)
			return
		}
		if c.Status != nestbox.StatusPausing && c.Status != nestbox.StatusResuming {
			status = http.StatusOK
		}
	}
	writeJSON(w, status, c)
}
