package e2bcompat

import (
	"context"
	"errors"
	"net/http"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// killWait bounds how long DELETE waits for the sandbox to be gone.
const killWait = time.Minute

// live returns a capsule of the request's team that the E2B surface shows:
// starting or running. Anything else is not found, as E2B reports killed
// sandboxes.
func (a *API) live(r *http.Request) (store.Capsule, error) {
	id := r.PathValue("id")
	c, err := a.life.Lookup(r.Context(), team(r), id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return c, notFound(id)
	}
	if err != nil {
		return c, err
	}
	if c.Status != nestbox.StatusRunning && c.Status != nestbox.StatusStarting {
		return c, notFound(id)
	}
	return c, nil
}

// running is live, waiting for a starting capsule to run.
func (a *API) running(r *http.Request) (store.Capsule, error) {
	c, err := a.live(r)
	if err != nil || c.Status == nestbox.StatusRunning {
		return c, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.StartTimeout)
	defer cancel()
	if _, err := a.life.Wait(ctx, team(r), c.ID, nestbox.StatusRunning); err != nil {
		return c, err
	}
	return a.live(r)
}

// connectRequest is E2B's ConnectSandbox (v1, timeout required) and
// ConnectSandboxV2 (optional body).
type connectRequest struct {
	Timeout *int `json:"timeout"`
}

// defaultConnectTimeout is the life a connect gives a sandbox when the
// request names none (E2B's ConnectSandboxV2 default).
const defaultConnectTimeout = 300

// connect answers 200 with a running sandbox, whose life it extends to at
// least the request's timeout (300 s when omitted) from now; it never
// shortens it. (201, "resumed", comes with pause.)
func (a *API) connect(w http.ResponseWriter, r *http.Request) {
	var req connectRequest
	if err := decode(w, r, &req, true); err != nil {
		a.writeError(w, r, err)
		return
	}
	c, err := a.running(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	secs := defaultConnectTimeout
	if req.Timeout != nil {
		secs = *req.Timeout
	}
	d := time.Duration(secs) * time.Second
	if c.ExpiresAt == nil || a.cfg.Now().Add(d).After(*c.ExpiresAt) {
		if _, err := a.life.SetTimeout(r.Context(), team(r), c.ID, d); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, a.sandboxOf(c))
}

// resume answers 409 for a running sandbox: there is nothing to resume
// until pause exists.
func (a *API) resume(w http.ResponseWriter, r *http.Request) {
	c, err := a.live(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeError(w, r, &statusError{http.StatusConflict, "sandbox " + c.ID + " is already running"})
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	c, err := a.live(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.detailOf(c))
}

// kill destroys the sandbox and answers 204 once it is gone, so that the
// SDK's next call (isRunning, a second kill) already sees it gone.
func (a *API) kill(w http.ResponseWriter, r *http.Request) {
	c, err := a.live(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if _, err := a.life.Destroy(r.Context(), team(r), c.ID); err != nil {
		a.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), killWait)
	defer cancel()
	if _, err := a.life.Wait(ctx, team(r), c.ID, nestbox.StatusStopped); err != nil {
		a.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// timeoutRequest is E2B's SandboxTimeoutRequest.
type timeoutRequest struct {
	Timeout *int `json:"timeout"`
}

func (a *API) setTimeout(w http.ResponseWriter, r *http.Request) {
	var req timeoutRequest
	if err := decode(w, r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Timeout == nil {
		a.writeError(w, r, errdefs.Invalid("timeout is required"))
		return
	}
	c, err := a.running(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if _, err := a.life.SetTimeout(r.Context(), team(r), c.ID, time.Duration(*req.Timeout)*time.Second); err != nil {
		a.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// pause answers 501 until Nestbox can pause sandboxes.
func (a *API) pause(w http.ResponseWriter, r *http.Request) {
	if _, err := a.live(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeError(w, r, &statusError{http.StatusNotImplemented, "pause is not supported yet by this Nestbox server"})
}

func (a *API) metrics(w http.ResponseWriter, r *http.Request) {
	c, err := a.running(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	m, err := a.life.Metrics(r.Context(), team(r), c.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, []metric{{
		Timestamp:     m.At,
		TimestampUnix: m.At.Unix(),
		CPUCount:      m.CPUCount,
		CPUUsedPct:    m.CPUUsedPct,
		MemUsed:       m.MemoryUsedBytes,
		MemTotal:      m.MemoryTotalBytes,
		DiskUsed:      m.DiskUsedBytes,
		DiskTotal:     m.DiskTotalBytes,
	}})
}
