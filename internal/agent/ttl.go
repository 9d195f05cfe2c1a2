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
func (a *Agent) enforceTimeouts(ctx context.Context, wg *sync.WaitGroup) {
	a.sweep(ctx, wg, a.cfg.ttlTick, EventTimedOut, func(_ context.Context, now time.Time) []*sandbox { return a.expired(now) })
}

// expired returns the running sandboxes whose end has passed and marks
// them stopping, so that no other tick or SetTimeout picks them up again.
func (a *Agent) expired(now time.Time) []*sandbox {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*sandbox
	for _, sb := range a.sandboxes {
		if sb.status == statusRunning && !sb.endAt.IsZero() && !now.Before(sb.endAt) {
			sb.status = statusStopping
			out = append(out, sb)
		}
	}
	return out
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
