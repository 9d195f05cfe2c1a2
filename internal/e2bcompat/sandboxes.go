package e2bcompat

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/store"
)

// killWait bounds how long DELETE waits for the sandbox to be gone.
const killWait = time.Minute

// live returns a capsule of the request's team that the E2B surface shows:
// starting, running, or paused (with pausing and resuming). Anything else
// is not found, as E2B reports killed sandboxes.
func (a *API) live(r *http.Request) (store.Capsule, error) {
	id := r.PathValue("id")
	c, err := a.life.Lookup(r.Context(), team(r), id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return c, notFound(id)
	}
	if err != nil {
		return c, err
	}
	if !slices.Contains(liveStatuses, c.Status) && !slices.Contains(pausedStatuses, c.Status) {
		return c, notFound(id)
	}
	return c, nil
}

// waitFor waits up to the start timeout for capsule id to reach want, and
// returns it as stored then; any other status is errdefs.ErrUnavailable.
func (a *API) waitFor(r *http.Request, id string, want nestbox.Status) (store.Capsule, error) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.StartTimeout)
	defer cancel()
	c, err := a.life.Wait(ctx, team(r), id, want)
	if err != nil {
		return store.Capsule{}, err
	}
	if c.Status != want {
		return store.Capsule{}, errdefs.Unavailable("sandbox %s is %s, not %s", id, c.Status, want)
	}
	return a.life.Lookup(r.Context(), team(r), id)
}

// resumed resumes paused (or pausing) capsule c with timeout secs and
// waits for it to run.
func (a *API) resumed(r *http.Request, c store.Capsule, secs int, discardMemory bool) (store.Capsule, error) {
	if c.Status == nestbox.StatusPausing {
		if _, err := a.waitFor(r, c.ID, nestbox.StatusPaused); err != nil {
			return c, err
		}
	}
	if c.Status != nestbox.StatusResuming {
		_, err := a.life.Resume(r.Context(), team(r), c.ID, lifecycle.ResumeOptions{Timeout: time.Duration(secs) * time.Second, DiscardMemory: discardMemory})
		a.record(r, "capsule.resume", c.ID, err)
		if err != nil {
			return c, err
		}
	}
	return a.waitFor(r, c.ID, nestbox.StatusRunning)
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
	// Memory false asks for a reboot from the paused disk (the SDK's
	// onResume: 'reboot'): files kept, memory dropped.
	Memory *bool `json:"memory"`
}

// defaultConnectTimeout is the life a connect gives a sandbox when the
// request names none (E2B's ConnectSandboxV2 default).
const defaultConnectTimeout = 300

// connect answers 200 with a running sandbox, whose life it extends to at
// least the request's timeout (300 s when omitted) from now; it never
// shortens it. A paused sandbox is resumed with that timeout: 201.
func (a *API) connect(w http.ResponseWriter, r *http.Request) {
	var req connectRequest
	if err := decode(w, r, &req, true); err != nil {
		a.writeError(w, r, err)
		return
	}
	secs := defaultConnectTimeout
	if req.Timeout != nil {
		secs = *req.Timeout
	}
	c, err := a.live(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if c.Status != nestbox.StatusRunning && c.Status != nestbox.StatusStarting {
		if err := a.checkTimeout(secs, nil); err != nil {
			a.writeError(w, r, err)
			return
		}
		c, err = a.resumed(r, c, secs, req.Memory != nil && !*req.Memory)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, a.sandboxOf(c))
		return
	}
	if c, err = a.running(r); err != nil {
		a.writeError(w, r, err)
		return
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

// resumeRequest is E2B's ResumedSandbox (the deprecated resume).
type resumeRequest struct {
	Timeout *int  `json:"timeout"`
	Memory  *bool `json:"memory"`
}

// resume is the deprecated POST /sandboxes/{id}/resume: 201 with the
// resumed sandbox; 409 for one that is not paused.
func (a *API) resume(w http.ResponseWriter, r *http.Request) {
	var req resumeRequest
	if err := decode(w, r, &req, true); err != nil {
		a.writeError(w, r, err)
		return
	}
	secs := defaultConnectTimeout
	if req.Timeout != nil {
		secs = *req.Timeout
	}
	if err := a.checkTimeout(secs, nil); err != nil {
		a.writeError(w, r, err)
		return
	}
	c, err := a.live(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if !slices.Contains(pausedStatuses, c.Status) {
		a.writeError(w, r, &statusError{http.StatusConflict, "sandbox " + c.ID + " is already running"})
		return
	}
	if c, err = a.resumed(r, c, secs, req.Memory != nil && !*req.Memory); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, a.sandboxOf(c))
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
	_, err = a.life.Destroy(r.Context(), team(r), c.ID)
	a.record(r, "capsule.destroy", c.ID, err)
	if err != nil {
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

// pauseRequest is E2B's SandboxPauseRequest.
type pauseRequest struct {
	// Memory defaults to true; false keeps only the disk.
	Memory *bool `json:"memory"`
}

// pause pauses a running sandbox and answers 204 once it is paused; 409
// when it is paused (or pausing) already, which the SDK reports as false.
func (a *API) pause(w http.ResponseWriter, r *http.Request) {
	var req pauseRequest
	if err := decode(w, r, &req, true); err != nil {
		a.writeError(w, r, err)
		return
	}
	c, err := a.live(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if slices.Contains(pausedStatuses, c.Status) {
		a.writeError(w, r, &statusError{http.StatusConflict, "sandbox " + c.ID + " is already paused"})
		return
	}
	if c.Status != nestbox.StatusRunning {
		if c, err = a.running(r); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	opts := lifecycle.PauseOptions{Memory: req.Memory == nil || *req.Memory}
	_, err = a.life.Pause(r.Context(), team(r), c.ID, opts)
	a.record(r, "capsule.pause", c.ID, err)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if _, err := a.waitFor(r, c.ID, nestbox.StatusPaused); err != nil {
		a.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
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
