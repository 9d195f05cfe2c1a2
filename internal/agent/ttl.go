package agent

import (
	"context"
	"sync"
	"time"

	"nestbox.dev/internal/errdefs"
)

// sweep calls find every interval until ctx is done and destroys each
// sandbox it returns (find marks them stopping), reporting event. Each
// destroy runs in a goroutine joined by wg and finishes even when ctx is
// cancelled. The timeout enforcer and the crash monitor are both sweeps.
func (a *Agent) sweep(ctx context.Context, wg *sync.WaitGroup, every time.Duration, event EventType, find func(context.Context, time.Time) []*sandbox) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, sb := range find(ctx, now) {
				wg.Go(func() {
					sb.log.Info("removing sandbox", "reason", event)
					if err := a.destroySandbox(context.WithoutCancel(ctx), sb, event); err != nil {
						sb.log.Error("remove sandbox", "reason", event, "err", err)
					}
				})
			}
		}
	}
}

// enforceTimeouts destroys every running sandbox whose end of life has
// passed, checking every ttlTick (200 ms by default), so a sandbox outlives
// its timeout by less than a second.
// A sandbox created with auto_pause is paused instead (with its memory, or
// only its disk with auto_pause_filesystem_only) and reported with a
// "paused" event whose reason is "timeout". A paused sandbox has no end of
// life: no timeout fires on it.
func (a *Agent) enforceTimeouts(ctx context.Context, wg *sync.WaitGroup) {
	a.sweep(ctx, wg, a.cfg.ttlTick, EventTimedOut, func(_ context.Context, now time.Time) []*sandbox {
		destroy, pause := a.expired(now)
		for _, sb := range pause {
			wg.Go(func() { a.autoPause(context.WithoutCancel(ctx), sb) })
		}
		return destroy
	})
}

// expired returns the running sandboxes whose end has passed, marked
// stopping (to destroy) or pausing (to pause, when created with
// auto_pause), so that no other tick or SetTimeout picks them up again.
func (a *Agent) expired(now time.Time) (destroy, pause []*sandbox) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, sb := range a.sandboxes {
		if sb.status == statusRunning && !sb.endAt.IsZero() && !now.Before(sb.endAt) {
			if sb.cfg.AutoPause {
				sb.status = statusPausing
				pause = append(pause, sb)
			} else {
				sb.status = statusStopping
				destroy = append(destroy, sb)
			}
		}
	}
	return destroy, pause
}

// autoPauseRetry is how long a sandbox whose auto-pause failed runs on
// before the next attempt.
const autoPauseRetry = 30 * time.Second

// autoPause pauses sb, which expired marked pausing, and reports it. A
// failed auto-pause leaves the sandbox running (or removed, as a failed
// pause does); it is tried again on a later tick, since its end of life
// has still passed.
func (a *Agent) autoPause(ctx context.Context, sb *sandbox) {
	sb.op.Lock()
	defer sb.op.Unlock()
	a.mu.Lock()
	ok := !sb.gone && sb.status == statusPausing
	a.mu.Unlock()
	if !ok { // a destroy came first
		return
	}
	sb.log.Info("pausing sandbox at the end of its timeout", "filesystem_only", sb.cfg.AutoPauseFilesystemOnly)
	if err := a.doPause(ctx, sb, sb.cfg.AutoPauseFilesystemOnly); err != nil {
		sb.log.Error("auto-pause failed; trying again in a while", "err", err)
		a.mu.Lock()
		if sb.status == statusRunning {
			sb.endAt = time.Now().Add(autoPauseRetry)
		}
		a.mu.Unlock()
		return
	}
	a.emitReason(sb.id, EventPaused, "timeout")
}

// setTimeout moves sandbox id's end of life to now + timeout and records it
// in the state file.
func (a *Agent) setTimeout(ctx context.Context, id string, timeout time.Duration) (time.Time, error) {
	if timeout <= 0 {
		return time.Time{}, errdefs.Invalid("timeout must be positive")
	}
	sb := a.lookup(id)
	if sb == nil {
		return time.Time{}, errdefs.NotFound("sandbox %s not found", id)
	}
	sb.op.Lock()
	defer sb.op.Unlock()
	endAt := time.Now().Add(timeout)
	a.mu.Lock()
	if !sb.gone && (sb.status == statusPaused || sb.status == statusError) {
		st := sb.status
		a.mu.Unlock()
		return time.Time{}, errdefs.Conflict("sandbox %s is %s: its lifetime is frozen until it is resumed", id, st)
	}
	if sb.gone || sb.status != statusRunning {
		a.mu.Unlock()
		return time.Time{}, errdefs.NotFound("sandbox %s not found", id)
	}
	sb.endAt = endAt
	a.mu.Unlock()
	if err := a.writeState(sb); err != nil {
		// The new end holds in memory; a restart would use the old one.
		sb.log.Warn("timeout not persisted", "err", err)
	}
	return endAt, nil
}
