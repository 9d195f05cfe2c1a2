package agent

import (
	"context"
	"fmt"
	"os"
	"time"

	"nestbox.dev/internal/driver"
)

// recoverPause adopts a sandbox whose state file a pause or resume wrote,
// given what the runtime says of it (st). It reports whether the sandbox
// was one of those (the caller then leaves it alone); a sandbox recorded
// running or creating is not. Nothing of a paused sandbox is ever removed
// here: every outcome is running, paused (the snapshot verified, or the
// disk kept) or error with its files kept.
//
//   - paused or error: registered as they were, the network slot reserved.
//   - pausing, runtime still running: the pause did not get to the
//     checkpoint, or the sentry is still writing one (then it exits when
//     done, which is waited for: see checkpointSettled); a sandbox that
//     still runs after that runs again (envd's preparation undone, the
//     partial snapshot removed).
//   - pausing, runtime gone: paused if the snapshot is complete (or the
//     pause kept only the disk), else error.
//   - resuming, runtime running: the restore happened; it runs (envd's
//     post-restore init sent again, a fresh default timeout).
//   - resuming, runtime gone: still paused; the snapshot was kept.
//   - paused in memory (or pausing or resuming with the runtime frozen):
//     adopted paused in memory, frozen, network kept; its demotion is due
//     after a fresh grace period. With the runtime gone, its memory is
//     lost: paused on disk if a demotion cut by the restart completed
//     its snapshot, else error with the files kept.
//
// Called by recover, alone.
func (a *Agent) recoverPause(ctx context.Context, sb *sandbox, st driver.State) (bool, error) {
	if handled, err := a.recoverMemoryTier(ctx, sb, st); handled {
		return true, err
	}
	runs := st == driver.StateRunning || st == driver.StatePaused
	switch sb.status {
	case statusPaused, statusError:
		a.sandboxes[sb.id] = sb
		sb.log.Info("adopted sandbox", "status", sb.status)
	case statusPausing:
		if runs {
			if err := a.net.Adopt(sb.net); err != nil {
				return false, nil // treated as a dead running sandbox
			}
			runs = a.checkpointSettled(ctx, sb)
		}
		if runs {
			sb.fsOnly, sb.pausedAt, sb.pauseTier = false, time.Time{}, ""
			if err := a.envd.postRestoreInit(ctx, sb.net.Addr(), sb.cfg, a.cfg.RestoreInitTimeout); err != nil {
				sb.log.Warn("undo envd's snapshot preparation after a pause cut by a restart", "err", err)
			}
			os.RemoveAll(snapshotDir(sb))
			a.adoptAs(sb, statusRunning, "pause cut by a restart; the sandbox kept running")
			return true, nil
		}
		if sb.fsOnly || verifySnapshot(sb) == nil {
			sb.pausedAt, sb.pauseTier = time.Now().UTC(), tierDisk
			a.adoptAs(sb, statusPaused, "pause cut by a restart after its checkpoint; paused")
		} else {
			sb.errMsg = "the agent stopped during the pause, before its snapshot was complete; the writable layer is kept"
			a.adoptAs(sb, statusError, "pause cut by a restart before its snapshot was complete")
		}
	case statusResuming:
		if runs {
			if err := a.net.Adopt(sb.net); err != nil {
				return false, nil
			}
			if !sb.fsOnly {
				if err := a.envd.postRestoreInit(ctx, sb.net.Addr(), sb.cfg, a.cfg.RestoreInitTimeout); err != nil {
					sb.log.Warn("post-restore init after a resume cut by a restart", "err", err)
				}
			}
			sb.fsOnly, sb.pausedAt, sb.pauseTier = false, time.Time{}, ""
			sb.endAt = time.Now().Add(a.cfg.DefaultTimeout)
			os.RemoveAll(snapshotDir(sb))
			sb.proxy = newSandboxProxy(a, sb)
			a.adoptAs(sb, statusRunning, "resume cut by a restart after the restore; running")
			a.emit(sb.id, EventRunning)
			return true, nil
		}
		a.adoptAs(sb, statusPaused, "resume cut by a restart before the restore; still paused")
	default:
		return false, nil
	}
	return true, a.releasePausedRuntime(ctx, sb, st)
}

// releasePausedRuntime removes what a sandbox paused on disk (or in
// error) must not hold, given the runtime's state st: its runtime (a
// checkpoint whose delete did not happen), and the kernel's network
// objects (a pause or resume cut half-way may have left some). Its
// network slot stays reserved.
func (a *Agent) releasePausedRuntime(ctx context.Context, sb *sandbox, st driver.State) error {
	if st != driver.StateNotFound {
		if err := a.driver.Destroy(ctx, sb.rid); err != nil {
			return fmt.Errorf("remove the runtime of paused sandbox %s: %w", sb.id, err)
		}
	}
	if sb.net.ID != "" {
		if err := a.net.Reserve(sb.net); err != nil {
			return fmt.Errorf("reserve the address of paused sandbox %s: %w", sb.id, err)
		}
		if err := a.net.Release(ctx, sb.net); err != nil {
			return fmt.Errorf("release the network of paused sandbox %s: %w", sb.id, err)
		}
	}
	return nil
}

// adoptAs registers sb with status st and records it.
func (a *Agent) adoptAs(sb *sandbox, st status, why string) {
	sb.status = st
	if st == statusRunning && sb.proxy == nil {
		sb.proxy = newSandboxProxy(a, sb)
	}
	if st != statusRunning {
		sb.endAt = time.Time{}
	}
	a.sandboxes[sb.id] = sb
	if err := a.writeState(sb); err != nil {
		sb.log.Warn("state not persisted after adoption", "err", err)
	}
	sb.log.Info("adopted sandbox", "status", st, "why", why)
}

// checkpointSettled waits, when a restarted agent finds a pausing sandbox
// whose runtime runs and whose images directory exists, for the checkpoint
// the killed agent may have started: runsc's client died with the agent,
// but the sentry finishes writing the images and then exits. The sandbox
// is running again once envd answers (the sentry is frozen while it
// saves). It reports whether the runtime still runs.
func (a *Agent) checkpointSettled(ctx context.Context, sb *sandbox) bool {
	if _, err := os.Stat(imagesDir(sb)); err != nil {
		return true // no checkpoint was started
	}
	// Writing the image takes ~4 ms per MiB on this class of machine.
	deadline := time.Now().Add(30*time.Second + time.Duration(sb.cfg.GetMemoryMb())*10*time.Millisecond)
	for time.Now().Before(deadline) {
		st, err := a.driver.State(ctx, sb.rid)
		if err == nil && st != driver.StateRunning && st != driver.StatePaused {
			sb.log.Info("a checkpoint left by the killed agent ended with the sandbox's exit", "state", st)
			return false
		}
		if a.envd.healthy(ctx, sb.net.Addr(), 500*time.Millisecond) {
			return true
		}
		select {
		case <-ctx.Done():
			return true
		case <-time.After(100 * time.Millisecond):
		}
	}
	sb.log.Warn("a pausing sandbox neither answered nor exited after a restart; treated as running")
	return true
}

// recoverMemoryTier adopts sb if it is, or may be, in the memory tier
// (see recoverPause) and reports whether it did.
func (a *Agent) recoverMemoryTier(ctx context.Context, sb *sandbox, st driver.State) (bool, error) {
	frozen := st == driver.StatePaused
	inMemory := sb.pauseTier == tierMemory && (sb.status == statusPaused || sb.status == statusResuming)
	if inMemory && st == driver.StateRunning && sb.status == statusPaused && !a.checkpointSettled(ctx, sb) {
		// A demotion thawed it and its checkpoint, cut by the restart,
		// ended the sandbox once the sentry had written it.
		st = driver.StateStopped
	}
	switch {
	case frozen && (inMemory || sb.status == statusPausing):
	case inMemory && st == driver.StateRunning && sb.status == statusPaused:
		// Paused in memory by the record, yet running: freeze it again.
		p, ok := a.driver.(driver.Pauser)
		if !ok {
			return false, nil
		}
		if err := p.Pause(ctx, sb.rid); err != nil {
			return true, fmt.Errorf("freeze paused sandbox %s again: %w", sb.id, err)
		}
	case inMemory && st != driver.StateRunning:
		if verifySnapshot(sb) == nil {
			sb.pauseTier = tierDisk
			a.adoptAs(sb, statusPaused, "the memory tier's runtime is gone, but a demotion cut by the restart wrote its snapshot; paused on disk")
			return true, a.releasePausedRuntime(ctx, sb, st)
		}
		os.RemoveAll(snapshotDir(sb))
		sb.errMsg = "the sandbox was paused in memory and its runtime ended while the agent was down; the writable layer is kept"
		sb.pauseTier = tierDisk
		a.adoptAs(sb, statusError, "paused in memory, runtime gone")
		return true, a.releasePausedRuntime(ctx, sb, st)
	default:
		return false, nil
	}
	if err := a.net.Adopt(sb.net); err != nil {
		return true, fmt.Errorf("adopt the network of paused sandbox %s: %w", sb.id, err)
	}
	if sb.pausedAt.IsZero() || sb.status != statusPaused {
		sb.pausedAt = time.Now().UTC()
	}
	sb.pauseTier = tierMemory
	sb.demoteAt = time.Now().Add(a.memoryGrace())
	os.RemoveAll(snapshotDir(sb)) // a demotion cut before its checkpoint
	a.adoptAs(sb, statusPaused, "frozen in memory; paused in the memory tier")
	return true, nil
}
