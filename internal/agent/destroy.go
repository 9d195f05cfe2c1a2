package agent

import (
	"context"
	"fmt"
	"time"
)

// destroy removes sandbox id. An unknown ID is not an error: destroy is
// idempotent. A destroy of a sandbox being created waits for the create.
func (a *Agent) destroy(ctx context.Context, id string) error {
	sb := a.lookup(id)
	if sb == nil {
		return nil
	}
	return a.destroySandbox(ctx, sb, EventStopped)
}

// teardownTimeout bounds a whole teardown (a destroy, or the undo of a
// failed create): every command it runs (runsc, ip, nft, tc) is killed by
// then, so a hung one cannot hold the sandbox's lock forever. Each runsc
// command has a shorter bound of its own.
const teardownTimeout = 2 * time.Minute

// destroySandbox removes sb and reports why with an event of type reason.
// It is safe to call concurrently for the same sandbox: the first caller
// removes it, the others find it gone. The removal is not tied to the
// caller's cancellation (a half-removed sandbox helps nobody) but to
// teardownTimeout; what a timed-out teardown leaves, the next destroy or
// a restarted agent removes.
func (a *Agent) destroySandbox(ctx context.Context, sb *sandbox, reason EventType) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
	defer cancel()
	sb.op.Lock()
	defer sb.op.Unlock()
	a.mu.Lock()
	if sb.gone {
		a.mu.Unlock()
		return nil
	}
	sb.status = statusStopping
	a.mu.Unlock()

	start := time.Now()
	if sb.proxy != nil {
		// Stop handing out connections before the address can be reused.
		sb.proxy.close()
	}
	if err := a.teardown(ctx, sb); err != nil {
		// The sandbox stays registered (as stopping) with its state file,
		// so that another destroy, or a restarted agent, finishes the job.
		return fmt.Errorf("destroy sandbox %s: %w", sb.id, err)
	}
	a.forget(sb)
	a.kickPools() // the room it held may refill a pool
	a.emit(sb.id, reason)
	sb.log.Info("sandbox removed", "reason", reason, "took", time.Since(start))
	return nil
}
