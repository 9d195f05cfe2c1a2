package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/capsulestate"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/store"
)

// PauseOptions change how Pause pauses a capsule.
type PauseOptions struct {
	// Memory keeps the memory image: processes go on after the resume.
	// False keeps only the disk; the resume boots the capsule fresh.
	Memory bool
}

// ResumeOptions change how Resume resumes a capsule.
type ResumeOptions struct {
	// Timeout is the resumed capsule's lifetime from the resume; zero
	// means the lifetime it had left at the pause (DefaultTimeout if
	// none was left). At most Config.MaxLifetime.
	Timeout time.Duration
	// DiscardMemory boots a capsule paused with its memory fresh from its
	// disk instead, dropping the memory image (E2B's connect with memory
	// false).
	DiscardMemory bool
}

// ErrPaused is the kind of error a request to a paused capsule without
// auto-resume gets (with errdefs.ErrConflict): the HTTP layer answers it
// with the stable code "capsule_paused".
var ErrPaused = errors.New("capsule is paused")

// Pause moves a running capsule of team to StatusPausing and pauses it on
// its host in the background; it returns at once. A capsule already
// pausing or paused, or not running, is errdefs.ErrConflict and changes
// nothing.
func (s *Service) Pause(ctx context.Context, teamID, id string, opts PauseOptions) (nestbox.Capsule, error) {
	c, err := s.get(ctx, teamID, id)
	if err != nil {
		return nestbox.Capsule{}, err
	}
	switch c.Status {
	case nestbox.StatusPausing, nestbox.StatusPaused:
		return c.Capsule, errdefs.Conflict("capsule %s is already %s", id, c.Status)
	case nestbox.StatusRunning:
	default:
		return c.Capsule, errdefs.Conflict("capsule %s is %s, not running", id, c.Status)
	}
	host, err := s.hosts.Get(c.HostID)
	if err != nil {
		return c.Capsule, errdefs.Unavailable("host %s of capsule %s: %v", c.HostID, id, err)
	}
	now := s.cfg.Now().UTC()
	var remaining time.Duration
	if c.ExpiresAt != nil {
		remaining = max(c.ExpiresAt.Sub(now), 0)
	}
	c, err = s.transition(ctx, id, []nestbox.Status{nestbox.StatusRunning}, store.StatusUpdate{
		To: nestbox.StatusPausing, Reason: "pause requested", Generation: c.Generation, At: now,
	})
	if err != nil {
		return c.Capsule, err
	}
	s.background(id, func(ctx context.Context) { s.runPause(ctx, c, host, opts, remaining) })
	return c.Capsule, nil
}

// runPause pauses the sandbox on its host and records the outcome. A
// failed pause asks the host what became of the sandbox: still running is
// StatusRunning again, gone is StatusError. A destroy that came in
// meanwhile is finished instead.
func (s *Service) runPause(ctx context.Context, c store.Capsule, host Host, opts PauseOptions, remaining time.Duration) {
	log := s.log.With("capsule", c.ID, "host", host.ID)
	start := time.Now()
	cctx, cancel := s.callContext(ctx, callPause)
	resp, err := host.Agent.PauseSandbox(cctx, connect.NewRequest(&agentpb.PauseSandboxRequest{Id: c.ID, FilesystemOnly: !opts.Memory}))
	cancel()
	s.metrics.observeOp(opPause, start, err, ctx.Err() != nil)
	if ctx.Err() != nil {
		log.Info("pause interrupted by shutdown")
		return // the next reconcile asks the host
	}
	ctx = context.WithoutCancel(ctx)
	from := []nestbox.Status{nestbox.StatusPausing}
	var u store.StatusUpdate
	if err == nil {
		u = s.pausedUpdate(resp.Msg.GetSandbox(), opts.Memory, remaining, "paused")
	} else {
		err = errdefs.FromConnect(err)
		log.Warn("pause failed", "err", err)
		sb, gerr := s.getSandbox(ctx, host, c.ID)
		switch {
		case errors.Is(gerr, errdefs.ErrNotFound):
			u = store.StatusUpdate{To: nestbox.StatusError, Reason: "pause: " + err.Error() + "; the sandbox is gone", StoppedAt: s.cfg.Now().UTC()}
		case gerr != nil:
			log.Warn("after a failed pause, the host does not say what it holds", "err", gerr)
			return // stays pausing: the reconciler asks again
		case sb.GetState() == agentpb.SandboxState_SANDBOX_STATE_RUNNING:
			u = store.StatusUpdate{To: nestbox.StatusRunning, Reason: "pause failed: " + err.Error()}
		case sb.GetState() == agentpb.SandboxState_SANDBOX_STATE_PAUSED:
			u = s.pausedUpdate(sb, sb.GetPauseTier() != "" && !sb.GetFilesystemOnly(), remaining, "paused (the host finished the pause)")
		default:
			u = store.StatusUpdate{To: nestbox.StatusError, Reason: "pause: " + err.Error() + "; the sandbox is gone", StoppedAt: s.cfg.Now().UTC()}
		}
	}
	u.Generation = c.Generation
	s.settle(ctx, c.ID, host, from, u)
}

// pausedUpdate is the change to StatusPaused for sandbox sb.
func (s *Service) pausedUpdate(sb *agentpb.Sandbox, memory bool, remaining time.Duration, reason string) store.StatusUpdate {
	at := s.cfg.Now().UTC()
	if sb.GetPausedAt() != nil {
		at = sb.GetPausedAt().AsTime().UTC()
	}
	if sb != nil && sb.GetFilesystemOnly() {
		memory = false
	}
	return store.StatusUpdate{To: nestbox.StatusPaused, Reason: reason, Pause: &store.Pause{At: at, Memory: memory, Remaining: remaining}}
}

// settle records the outcome u of background work on capsule id; if the
// capsule moved to stopping meanwhile (a destroy during the work), it
// finishes that destroy instead.
func (s *Service) settle(ctx context.Context, id string, host Host, from []nestbox.Status, u store.StatusUpdate) {
	c, err := s.record(ctx, id, from, u)
	switch {
	case err == nil:
		s.log.Info("capsule "+string(u.To), "capsule", id, "host", host.ID, "reason", u.Reason)
	case errors.Is(err, errdefs.ErrConflict) && c.Status == nestbox.StatusStopping:
		s.finishDestroy(ctx, id, host)
	case errors.Is(err, errdefs.ErrConflict), errors.Is(err, errdefs.ErrNotFound):
	default:
		s.log.Error("record capsule status", "capsule", id, "host", host.ID, "to", u.To, "err", err)
	}
}

// getSandbox asks a host about one sandbox.
func (s *Service) getSandbox(ctx context.Context, h Host, id string) (*agentpb.Sandbox, error) {
	ctx, cancel := s.callContext(ctx, callQuery)
	defer cancel()
	resp, err := h.Agent.GetSandbox(ctx, connect.NewRequest(&agentpb.GetSandboxRequest{Id: id}))
	if err != nil {
		return nil, fmt.Errorf("get sandbox %s on host %s: %w", id, h.ID, errdefs.FromConnect(err))
	}
	return resp.Msg.GetSandbox(), nil
}

// Resume moves a paused capsule of team to StatusResuming and resumes it on
// its host in the background; it returns at once. A capsule already
// resuming is returned as it is; one in any other status but paused is
// errdefs.ErrConflict. A timeout over Config.MaxLifetime is
// errdefs.ErrInvalid. The new timeout never takes the capsule past
// CreatedAt + Config.MaxLifetime (it is shortened to end there); a capsule
// already past that is errdefs.ErrConflict.
func (s *Service) Resume(ctx context.Context, teamID, id string, opts ResumeOptions) (nestbox.Capsule, error) {
	c, err := s.get(ctx, teamID, id)
	if err != nil {
		return nestbox.Capsule{}, err
	}
	c, err = s.resume(ctx, c, opts)
	return c.Capsule, err
}

func (s *Service) resume(ctx context.Context, c store.Capsule, opts ResumeOptions) (store.Capsule, error) {
	if opts.Timeout < 0 || opts.Timeout > s.cfg.MaxLifetime || (opts.Timeout != 0 && opts.Timeout < time.Second) {
		return c, errdefs.Invalid("timeout_seconds %d: want 1 to %d", int(opts.Timeout/time.Second), int(s.cfg.MaxLifetime/time.Second))
	}
	switch c.Status {
	case nestbox.StatusResuming:
		return c, nil
	case nestbox.StatusPaused:
	default:
		return c, errdefs.Conflict("capsule %s is %s, not paused", c.ID, c.Status)
	}
	host, err := s.hosts.Get(c.HostID)
	if err != nil {
		return c, errdefs.Unavailable("host %s of capsule %s: %v", c.HostID, c.ID, err)
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = c.Remaining.Truncate(time.Second)
		if timeout < time.Second {
			timeout = DefaultTimeout
		}
	}
	// The lifetime cap counts from creation, paused time included: a
	// resume cannot take a capsule past it any more than a timeout change.
	limit := c.CreatedAt.Add(s.cfg.MaxLifetime)
	left := limit.Sub(s.cfg.Now()).Truncate(time.Second)
	if left < time.Second {
		return c, errdefs.Conflict("capsule %s reached its maximum lifetime at %s (%s after its creation) and cannot run again; destroy it",
			c.ID, limit.UTC().Format(time.RFC3339), s.cfg.MaxLifetime)
	}
	timeout = min(timeout, left)
	c, err = s.transition(ctx, c.ID, []nestbox.Status{nestbox.StatusPaused}, store.StatusUpdate{
		To: nestbox.StatusResuming, Reason: "resume requested", Generation: c.Generation,
	})
	if err != nil {
		return c, err
	}
	s.background(c.ID, func(ctx context.Context) { s.runResume(ctx, c, host, timeout, opts.DiscardMemory) })
	return c, nil
}

// runResume resumes the sandbox on its host and records the outcome. A
// snapshot that failed its check (data_loss) is StatusError with that
// reason; any other failure asks the host: a sandbox it still holds
// paused is StatusPaused again, anything else StatusError (the agent
// destroyed what it had restored).
func (s *Service) runResume(ctx context.Context, c store.Capsule, host Host, timeout time.Duration, discardMemory bool) {
	log := s.log.With("capsule", c.ID, "host", host.ID)
	req := &agentpb.ResumeSandboxRequest{Id: c.ID, TimeoutSeconds: uint32(timeout / time.Second), DiscardMemory: discardMemory}
	if !c.PausedMemory || discardMemory {
		// A filesystem-only pause boots fresh: envd needs its secrets
		// again, which only the control plane keeps.
		req.EnvVars, req.AccessToken = c.EnvVars, c.AccessToken
	}
	start := time.Now()
	cctx, cancel := s.callContext(ctx, callResume)
	resp, err := host.Agent.ResumeSandbox(cctx, connect.NewRequest(req))
	cancel()
	s.metrics.observeOp(opResume, start, err, ctx.Err() != nil)
	if ctx.Err() != nil {
		log.Info("resume interrupted by shutdown")
		return // the next reconcile asks the host
	}
	ctx = context.WithoutCancel(ctx)
	from := []nestbox.Status{nestbox.StatusResuming}
	now := s.cfg.Now().UTC()
	var u store.StatusUpdate
	switch {
	case err == nil:
		sb := resp.Msg.GetSandbox()
		u = store.StatusUpdate{To: nestbox.StatusRunning, Reason: "resumed", EnvdVersion: sb.GetEnvdVersion(), ExpiresAt: now.Add(timeout)}
		if sb.GetEndAt() != nil {
			u.ExpiresAt = sb.GetEndAt().AsTime().UTC()
		}
	case connect.CodeOf(err) == connect.CodeDataLoss:
		log.Error("resume refused: the snapshot failed its check", "err", err)
		u = store.StatusUpdate{To: nestbox.StatusError, Reason: "resume: the snapshot failed its integrity check (its files are kept on the host): " + errdefs.FromConnect(err).Error(), StoppedAt: now}
	default:
		err = errdefs.FromConnect(err)
		log.Warn("resume failed", "err", err)
		sb, gerr := s.getSandbox(ctx, host, c.ID)
		switch {
		case gerr == nil && sb.GetState() == agentpb.SandboxState_SANDBOX_STATE_PAUSED:
			u = store.StatusUpdate{To: nestbox.StatusPaused, Reason: "resume failed: " + err.Error()}
		case gerr == nil && sb.GetState() == agentpb.SandboxState_SANDBOX_STATE_RUNNING:
			u = store.StatusUpdate{To: nestbox.StatusRunning, Reason: "resumed (the host finished the resume)", ExpiresAt: now.Add(timeout)}
			if sb.GetEndAt() != nil {
				u.ExpiresAt = sb.GetEndAt().AsTime().UTC()
			}
		case gerr != nil && !errors.Is(gerr, errdefs.ErrNotFound):
			log.Warn("after a failed resume, the host does not say what it holds", "err", gerr)
			return // stays resuming: the reconciler asks again
		default:
			u = store.StatusUpdate{To: nestbox.StatusError, Reason: "resume: " + err.Error() + "; the host destroyed what it had restored", StoppedAt: now}
		}
	}
	u.Generation = c.Generation
	s.settle(ctx, c.ID, host, from, u)
}

// EnsureRunning returns capsule id, whatever its team, running, with its
// host: for every request routed to a capsule (the API's exec, files, PTY
// and port proxy, E2B's sandbox traffic and connect). A paused capsule
// created with auto-resume is resumed, and a starting, pausing or
// resuming one waited for (a pausing one without auto-resume then gets
// ErrPaused), at most Config.AutoResumeWait (and ctx); a
// paused one without auto-resume is ErrPaused (with errdefs.ErrConflict),
// any other status errdefs.ErrConflict, an unknown ID errdefs.ErrNotFound.
func (s *Service) EnsureRunning(ctx context.Context, id string) (store.Capsule, Host, error) {
	return s.EnsureRunningIf(ctx, id, nil)
}

// EnsureRunningIf is EnsureRunning with allow, if not nil, asked first
// about the capsule as stored: an error from it is returned before
// anything is resumed, so that traffic a capsule would refuse (a private
// port without its traffic token) cannot wake it.
func (s *Service) EnsureRunningIf(ctx context.Context, id string, allow func(store.Capsule) error) (store.Capsule, Host, error) {
	if len(id) != capsulespec.IDLength {
		return store.Capsule{}, Host{}, errdefs.NotFound("capsule %q not found", id)
	}
	c, err := s.store.GetCapsule(ctx, id)
	if err != nil {
		return c, Host{}, err
	}
	if allow != nil {
		if err := allow(c); err != nil {
			return c, Host{}, err
		}
	}
	return s.ensureRunning(ctx, c)
}

func (s *Service) ensureRunning(ctx context.Context, c store.Capsule) (store.Capsule, Host, error) {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.AutoResumeWait)
	defer cancel()
	for {
		switch {
		case c.Status == nestbox.StatusRunning:
			return s.withHost(c)
		case c.Status == nestbox.StatusPaused && !c.AutoResume:
			return c, Host{}, fmt.Errorf("capsule %s is paused and was not created with auto_resume; resume it first: %w: %w", c.ID, ErrPaused, errdefs.ErrConflict)
		case c.Status == nestbox.StatusPaused:
			var err error
			if c, err = s.resume(wctx, c, ResumeOptions{}); err != nil && !errors.Is(err, errdefs.ErrConflict) {
				return c, Host{}, err
			}
		case !capsulestate.Transient(c.Status) || c.Status == nestbox.StatusStopping:
			// A stopping capsule will not run again: no point waiting.
			return c, Host{}, errdefs.Conflict("capsule %s is %s, not running", c.ID, c.Status)
		}
		if wctx.Err() != nil {
			if ctx.Err() != nil {
				return c, Host{}, ctx.Err()
			}
			return c, Host{}, errdefs.Unavailable("capsule %s is still %s after %s; try again", c.ID, c.Status, s.cfg.AutoResumeWait)
		}
		prev := c.Status
		if _, err := s.waitUntil(wctx, c.TeamID, c.ID, func(st nestbox.Status) bool { return st != prev }); err != nil {
			return c, Host{}, err
		}
		var err error
		if c, err = s.store.GetCapsule(context.WithoutCancel(ctx), c.ID); err != nil {
			return c, Host{}, err
		}
	}
}
