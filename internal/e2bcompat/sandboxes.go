package e2bcompat

import (
	"context"
	"errors"
	"net/http"
	"strconv"
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
	if err := a.checkTimeout(secs, &c); err != nil {
		a.writeError(w, r, err)
		return
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

// checkTimeout checks a request's timeout (seconds) against the longest a
// sandbox may live, before the lifecycle service sees it: its errors then
// name E2B's field, timeout. For an existing sandbox c, the new end may not
// pass c's creation plus that longest life either.
func (a *API) checkTimeout(secs int, c *store.Capsule) error {
	maxLife := a.life.MaxLifetime()
	if secs < 1 || time.Duration(secs)*time.Second > maxLife {
		return errdefs.Invalid("timeout %d: want 1 to %d seconds", secs, int(maxLife/time.Second))
	}
	if c == nil {
		return nil
	}
	limit := c.CreatedAt.Add(maxLife)
	if now := a.cfg.Now(); now.Add(time.Duration(secs) * time.Second).After(limit) {
		left := max(limit.Sub(now), 0)
		return errdefs.Invalid("timeout %d: sandbox %s may live until %s (%s after its creation), at most %d seconds more",
			secs, c.ID, limit.UTC().Format(time.RFC3339), maxLife, int(left/time.Second))
	}
	return nil
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
	if err := a.checkTimeout(*req.Timeout, &c); err != nil {
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

// metrics serves GET /sandboxes/{id}/metrics?start=&end= (unix seconds,
// both optional): the samples the host kept in [start, end], oldest first,
// start defaulting to the sandbox's creation and end to now; a reading
// taken now is the last one when the range reaches now, so that the list
// of a sandbox younger than one sampling interval is not empty.
func (a *API) metrics(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	start, err := unixParam(q.Get("start"), "start")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	end, err := unixParam(q.Get("end"), "end")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if !start.IsZero() && !end.IsZero() && start.After(end) {
		a.writeError(w, r, errdefs.Invalid("start %d is after end %d", start.Unix(), end.Unix()))
		return
	}
	c, err := a.running(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	from := start
	if from.IsZero() {
		from = c.CreatedAt
	}
	now, history, err := a.life.MetricsRange(r.Context(), team(r), c.ID, from, end)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if (end.IsZero() || !now.At.After(end)) && !now.At.Before(from) &&
		(len(history) == 0 || now.At.After(history[len(history)-1].At)) {
		history = append(history, now)
	}
	out := make([]metric, len(history))
	for i, m := range history {
		out[i] = metric{
			Timestamp:     m.At,
			TimestampUnix: m.At.Unix(),
			CPUCount:      m.CPUCount,
			CPUUsedPct:    m.CPUUsedPct,
			MemUsed:       m.MemoryUsedBytes,
			MemTotal:      m.MemoryTotalBytes,
			DiskUsed:      m.DiskUsedBytes,
			DiskTotal:     m.DiskTotalBytes,
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// unixParam reads an optional query parameter of unix seconds; "" is the
// zero time.
func unixParam(v, name string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, errdefs.Invalid("%s %q: want unix seconds", name, v)
	}
	return time.Unix(n, 0), nil
}
