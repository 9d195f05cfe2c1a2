package e2bcompat

import (
	"context"
	"net/http"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/lifecycle"
)

// defaultForkTimeout is a fork's lifetime when the request names none
// (E2B's SandboxForkRequest default).
const defaultForkTimeout = 15

// forkResult is E2B's SandboxForkResult: exactly one of the two is set.
type forkResult struct {
	Sandbox *sandbox   `json:"sandbox,omitempty"`
	Error   *errorBody `json:"error,omitempty"`
}

// fork serves POST /sandboxes/{id}/fork {count?, timeout?}: the sandbox is
// checkpointed once and count sandboxes start from it; 201 with one result
// per fork once each has started or failed. A sandbox that is not running
// is 409.
func (a *API) fork(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Count   *int `json:"count"`
		Timeout *int `json:"timeout"`
	}
	if err := decode(w, r, &req, true); err != nil {
		a.writeError(w, r, err)
		return
	}
	secs := defaultForkTimeout
	if req.Timeout != nil {
		secs = *req.Timeout
	}
	if err := a.checkTimeout(secs, nil); err != nil {
		a.writeError(w, r, err)
		return
	}
	count := 1
	if req.Count != nil {
		if count = *req.Count; count < 1 {
			a.writeError(w, r, errdefs.Invalid("count %d: want 1 to %d", count, lifecycle.MaxForks))
			return
		}
	}
	c, err := a.live(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	_, forks, err := a.life.Fork(r.Context(), team(r), c.ID, lifecycle.ForkOptions{Count: count, Timeout: time.Duration(secs) * time.Second})
	a.record(r, "capsule.fork", c.ID, err)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.StartTimeout)
	defer cancel()
	out := make([]forkResult, len(forks))
	for i, f := range forks {
		if f.Err != nil {
			out[i].Error = &errorBody{Code: errdefs.HTTPStatus(f.Err), Message: f.Err.Error()}
			continue
		}
		got, err := a.life.WaitSettled(ctx, team(r), f.Capsule.ID)
		switch {
		case err != nil:
			out[i].Error = &errorBody{Code: http.StatusServiceUnavailable, Message: "fork " + f.Capsule.ID + " did not start in time: " + err.Error()}
		case got.Status != nestbox.StatusRunning:
			out[i].Error = &errorBody{Code: http.StatusInternalServerError, Message: "fork " + f.Capsule.ID + " failed to start: " + got.Error}
		default:
			rec, err := a.life.Lookup(r.Context(), team(r), got.ID)
			if err != nil {
				out[i].Error = &errorBody{Code: errdefs.HTTPStatus(err), Message: err.Error()}
				continue
			}
			sb := a.sandboxOf(rec)
			out[i].Sandbox = &sb
		}
	}
	writeJSON(w, http.StatusCreated, out)
}
