package nestbox

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Handle drives one capsule. It is only the capsule's ID and a Client:
// creating one costs nothing, and it is safe for concurrent use.
type Handle struct {
	c  *Client
	id string
}

// Capsule returns a handle on the capsule with this ID without calling the
// API; a capsule that does not exist shows up as ErrNotFound on first use.
func (c *Client) Capsule(id string) *Handle { return &Handle{c: c, id: id} }

// ID returns the capsule's ID.
func (h *Handle) ID() string { return h.id }

// WaitOption changes whether a call waits for the capsule's status.
type WaitOption func(*waitOptions)

type waitOptions struct{ noWait bool }

// NoWait makes Create and Kill return as soon as the control plane has
// accepted the request, while the capsule is still starting or stopping.
func NoWait() WaitOption { return func(o *waitOptions) { o.noWait = true } }

func applyWait(opts []WaitOption) waitOptions {
	var o waitOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Create creates a capsule and, unless NoWait is given, waits until it
// runs. A capsule that ends in StatusError instead is reported as a
// *CapsuleError carrying the capsule's error message.
//
// When the capsule was created but waiting for it failed (the context
// ended, it failed to start), Create returns its handle together with the
// error, so that the caller can inspect or kill it.
func (c *Client) Create(ctx context.Context, req CreateCapsuleRequest, opts ...WaitOption) (*Handle, error) {
	var cp Capsule
	if err := c.do(ctx, http.MethodPost, "/v1/capsules", nil, req, &cp); err != nil {
		return nil, err
	}
	if cp.ID == "" {
		return nil, fmt.Errorf("create capsule: answer has no capsule ID")
	}
	h := c.Capsule(cp.ID)
	switch {
	case applyWait(opts).noWait || cp.Status == StatusRunning:
		return h, nil
	case cp.Status.Final():
		return h, &CapsuleError{Capsule: cp, Want: StatusRunning}
	}
	if _, err := h.Wait(ctx, StatusRunning); err != nil {
		return h, err
	}
	return h, nil
}

// Get returns the capsule with this ID.
func (c *Client) Get(ctx context.Context, id string) (Capsule, error) {
	var cp Capsule
	err := c.do(ctx, http.MethodGet, pathf("/v1/capsules/%s", id), nil, nil, &cp)
	return cp, err
}

// ListOptions filters and pages GET /v1/capsules. The zero value lists the
// first page of all capsules the key's team can see.
type ListOptions struct {
	// Status keeps the capsules in one of these statuses.
	Status []Status
	// Metadata keeps the capsules whose metadata has all these pairs.
	Metadata map[string]string
	// Limit is the page size; zero means the server's default.
	Limit int
	// Cursor continues a listing (CapsuleList.NextCursor).
	Cursor string
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	if len(o.Status) > 0 {
		s := make([]string, len(o.Status))
		for i, st := range o.Status {
			s[i] = string(st)
		}
		q.Set("status", strings.Join(s, ","))
	}
	for k, v := range o.Metadata {
		q.Set("metadata."+k, v)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	return q
}

// List returns one page of capsules.
func (c *Client) List(ctx context.Context, opts ListOptions) (CapsuleList, error) {
	var l CapsuleList
	err := c.do(ctx, http.MethodGet, "/v1/capsules", opts.query(), nil, &l)
	return l, err
}

// ListAll iterates over the capsules of all pages, starting at
// opts.Cursor; opts.Limit is the page size. An error ends the iteration
// after being yielded once.
func (c *Client) ListAll(ctx context.Context, opts ListOptions) iter.Seq2[Capsule, error] {
	return func(yield func(Capsule, error) bool) {
		for {
			page, err := c.List(ctx, opts)
			if err != nil {
				yield(Capsule{}, err)
				return
			}
			for _, cp := range page.Capsules {
				if !yield(cp, nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			if page.NextCursor == opts.Cursor {
				yield(Capsule{}, fmt.Errorf("list capsules: server repeated cursor %q", opts.Cursor))
				return
			}
			opts.Cursor = page.NextCursor
		}
	}
}

// Info returns the capsule as it is now.
func (h *Handle) Info(ctx context.Context) (Capsule, error) { return h.c.Get(ctx, h.id) }

// The server blocks one wait call for at most this long; Wait repeats the
// call until the status comes or ctx ends.
const waitCallTimeout = time.Minute

// Wait blocks until the capsule is in status want and returns it. If the
// capsule reaches a final status other than want, Wait returns a
// *CapsuleError. It ends with ctx.
func (h *Handle) Wait(ctx context.Context, want Status) (Capsule, error) {
	return h.wait(ctx, want, false)
}

// wait long-polls GET /v1/capsules/{id}?wait=want. With anyFinal, every
// final status counts as success.
func (h *Handle) wait(ctx context.Context, want Status, anyFinal bool) (Capsule, error) {
	const minPause, maxPause = 100 * time.Millisecond, 2 * time.Second
	pause := minPause
	for {
		timeout := waitCallTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = min(timeout, max(time.Until(dl), time.Second))
		}
		q := url.Values{
			"wait":    {string(want)},
			"timeout": {strconv.Itoa(int(timeout.Round(time.Second)/time.Second)) + "s"},
		}
		start := time.Now()
		var cp Capsule
		if err := h.c.do(ctx, http.MethodGet, pathf("/v1/capsules/%s", h.id), q, nil, &cp); err != nil {
			return cp, err
		}
		switch {
		case cp.Status == want:
			return cp, nil
		case cp.Status.Final() && anyFinal:
			return cp, nil
		case cp.Status.Final():
			return cp, &CapsuleError{Capsule: cp, Want: want}
		}
		// The answer came without the status: the server's timeout passed,
		// or it does not block at all. Pause when it came early, so that a
		// server that ignores ?wait is polled rather than hammered.
		if time.Since(start) >= timeout/2 {
			pause = minPause
			continue
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return cp, ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, maxPause)
	}
}

// Kill destroys the capsule and, unless NoWait is given, waits until it is
// gone (stopped, or error) and returns it as it ended.
func (h *Handle) Kill(ctx context.Context, opts ...WaitOption) (Capsule, error) {
	var cp Capsule
	if err := h.c.do(ctx, http.MethodDelete, pathf("/v1/capsules/%s", h.id), nil, nil, &cp); err != nil {
		return cp, err
	}
	if applyWait(opts).noWait || cp.Status.Final() {
		return cp, nil
	}
	return h.wait(ctx, StatusStopped, true)
}

// Pause pauses the running capsule, with its memory (processes go on
// after the resume) or, memory false, only its disk (the resume boots it
// fresh from its files), and, unless NoWait is given, waits until the
// pause has ended: the capsule is then paused, or running again if the
// pause failed with the sandbox intact, or in error. Pausing a paused
// capsule is ErrConflict.
func (h *Handle) Pause(ctx context.Context, memory bool, opts ...WaitOption) (Capsule, error) {
	var cp Capsule
	if err := h.c.do(ctx, http.MethodPost, pathf("/v1/capsules/%s/pause", h.id), nil, PauseRequest{Memory: &memory}, &cp); err != nil {
		return cp, err
	}
	if applyWait(opts).noWait || cp.Status != StatusPausing {
		return cp, nil
	}
	return h.waitWhile(ctx, StatusPausing)
}

// Resume resumes the paused capsule with a lifetime of timeout from now
// (zero: the lifetime it had left when paused) and, unless NoWait is
// given, waits until the resume has ended: running, or error (or paused
// again if nothing was started). A capsule that is not paused is
// ErrConflict.
func (h *Handle) Resume(ctx context.Context, timeout time.Duration, opts ...WaitOption) (Capsule, error) {
	var cp Capsule
	if timeout < 0 {
		return cp, fmt.Errorf("%w: timeout %v is negative", ErrInvalid, timeout)
	}
	return h.resume(ctx, ResumeRequest{TimeoutSeconds: int((timeout + time.Second - 1) / time.Second)}, opts)
}

// Reboot resumes the paused capsule from its disk alone, as Resume does
// but without its memory: its files are kept, its processes start anew,
// and the memory image is dropped. A capsule paused without memory resumes
// so anyway.
func (h *Handle) Reboot(ctx context.Context, timeout time.Duration, opts ...WaitOption) (Capsule, error) {
	if timeout < 0 {
		return Capsule{}, fmt.Errorf("%w: timeout %v is negative", ErrInvalid, timeout)
	}
	noMemory := false
	return h.resume(ctx, ResumeRequest{TimeoutSeconds: int((timeout + time.Second - 1) / time.Second), Memory: &noMemory}, opts)
}

func (h *Handle) resume(ctx context.Context, req ResumeRequest, opts []WaitOption) (Capsule, error) {
	var cp Capsule
	if err := h.c.do(ctx, http.MethodPost, pathf("/v1/capsules/%s/resume", h.id), nil, req, &cp); err != nil {
		return cp, err
	}
	if applyWait(opts).noWait || cp.Status != StatusResuming {
		return cp, nil
	}
	return h.waitWhile(ctx, StatusResuming)
}

// waitWhile polls the capsule until its status is no longer st.
// Fork branches the running capsule into count new capsules (1 to 10)
// that start from its processes, memory and files, each with its own ID,
// access token, network and a lifetime of timeout (zero: 300 s); the
// capsule stops for a moment while it is checkpointed and then runs on.
// Unless NoWait is given, Fork waits until every fork has settled
// (running, or error). It returns one result per fork: a fork that could
// not be made (the team's quota, for one) carries its error. A capsule
// that is not running is ErrConflict.
func (h *Handle) Fork(ctx context.Context, count int, timeout time.Duration, opts ...WaitOption) ([]ForkResult, error) {
	if count < 1 || timeout < 0 {
		return nil, fmt.Errorf("%w: fork count %d, timeout %v: want a count of 1 or more and a timeout not negative", ErrInvalid, count, timeout)
	}
	var resp ForkResponse
	req := ForkRequest{Count: count, TimeoutSeconds: int((timeout + time.Second - 1) / time.Second)}
	if err := h.c.do(ctx, http.MethodPost, pathf("/v1/capsules/%s/fork", h.id), nil, req, &resp); err != nil {
		return nil, err
	}
	if applyWait(opts).noWait {
		return resp.Forks, nil
	}
	for i, f := range resp.Forks {
		if f.Capsule == nil || f.Capsule.Status != StatusStarting {
			continue
		}
		c, err := h.c.Capsule(f.Capsule.ID).wait(ctx, StatusRunning, true)
		if err != nil {
			return resp.Forks, err
		}
		resp.Forks[i].Capsule = &c
	}
	return resp.Forks, nil
}

func (h *Handle) waitWhile(ctx context.Context, st Status) (Capsule, error) {
	pause := 100 * time.Millisecond
	for {
		cp, err := h.c.Get(ctx, h.id)
		if err != nil || cp.Status != st {
			return cp, err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return cp, ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// SetTimeout makes the platform destroy the capsule d from now (rounded up
// to a second) unless it is extended again, and returns the capsule with
// its new ExpiresAt.
func (h *Handle) SetTimeout(ctx context.Context, d time.Duration) (Capsule, error) {
	var cp Capsule
	if d <= 0 {
		return cp, fmt.Errorf("%w: timeout %v is not positive", ErrInvalid, d)
	}
	secs := int((d + time.Second - 1) / time.Second)
	err := h.c.do(ctx, http.MethodPost, pathf("/v1/capsules/%s/timeout", h.id), nil, SetTimeoutRequest{TimeoutSeconds: secs}, &cp)
	return cp, err
}

// Metrics returns a sample of the capsule's resource use.
func (h *Handle) Metrics(ctx context.Context) (Metrics, error) {
	var m Metrics
	err := h.c.do(ctx, http.MethodGet, pathf("/v1/capsules/%s/metrics", h.id), nil, nil, &m)
	return m, err
}

// Events returns the capsule's status history.
func (h *Handle) Events(ctx context.Context) ([]CapsuleEvent, error) {
	var l CapsuleEventList
	err := h.c.do(ctx, http.MethodGet, pathf("/v1/capsules/%s/events", h.id), nil, nil, &l)
	return l.Events, err
}
