package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/errdefs"
)

// DefaultPauseMemoryGrace is how long a paused sandbox stays frozen in
// memory before it is checkpointed to disk, when Config.PauseMemoryGrace
// is zero.
const DefaultPauseMemoryGrace = 30 * time.Second

// The memory tier. A pause with memory first freezes the sandbox where it
// is (runsc pause: the sentry stops its own tasks; never the cgroup
// freezer, which corrupts systrap): it keeps its memory, its runtime and
// its network, and a resume within the grace period thaws it in
// milliseconds. After the grace period, or at once when the host needs
// the memory, the demotion checkpoints it to disk: it is then the same
// paused sandbox, in the disk tier. Both tiers are statusPaused with the
// lifetime frozen; pauseTier says which.
//
// Every demotion holds sb.op, like any lifecycle operation: a resume or a
// destroy that comes meanwhile waits for it and finds the sandbox on disk
// (or, if the demotion failed, still in memory).

// Steps of a memory-tier pause (after pause-state, -prepare, -sync), of a
// memory-tier resume and of a demotion, in order; failAt hooks run after
// each.
const (
	stepPauseFreeze    = "pause-freeze"    // the runtime froze the sandbox
	stepResumeThaw     = "resume-thaw"     // the runtime let it run again
	stepDemoteThaw     = "demote-thaw"     // thawed for the checkpoint
	stepDemoteStop     = "demote-stop"     // checkpointed: the runtime is gone
	stepDemoteManifest = "demote-manifest" // the snapshot's checksums are recorded
	stepDemoteNetwork  = "demote-network"  // the kernel network objects are gone
	stepDemoteState    = "demote-state"    // the state file says disk
)

var (
	memoryPauseSteps  = []string{stepPauseState, stepPausePrepare, stepPauseSync, stepPauseFreeze, stepPausePaused}
	memoryResumeSteps = []string{stepResumeState, stepResumeThaw, stepResumeInit, stepResumeRunning}
	demoteSteps       = []string{stepDemoteThaw, stepDemoteStop, stepDemoteManifest, stepDemoteNetwork, stepDemoteState}
)

// demoteRetry is how long a sandbox whose demotion failed stays in memory
// before the next attempt.
const demoteRetry = 30 * time.Second

// memoryGrace is the memory tier's grace period; zero or less means
// pauses go straight to disk.
func (a *Agent) memoryGrace() time.Duration {
	if _, ok := a.driver.(driver.Pauser); !ok {
		return 0
	}
	return a.cfg.PauseMemoryGrace
}

// freeze ends a pause in the memory tier: envd is prepared and the layer
// synced (by doPause), so nothing the sandbox wrote is only in its cache;
// the runtime freezes it and the state file says paused in memory. On
// error the sandbox runs (thawed again if it was frozen) and doPause's
// undo takes it from there. The caller holds sb.op.
func (a *Agent) freeze(ctx context.Context, sb *sandbox, p driver.Pauser, step func(string) error, times *stepTimes) (err error) {
	if err := p.Pause(ctx, sb.rid); err != nil {
		return fmt.Errorf("pause sandbox %s: %w", sb.id, err)
	}
	defer func() {
		if err != nil {
			if terr := p.Resume(context.WithoutCancel(ctx), sb.rid); terr != nil {
				sb.log.Error("thaw after a failed pause", "err", terr)
			}
		}
	}()
	if err := step(stepPauseFreeze); err != nil {
		return err
	}
	now := time.Now()
	a.mu.Lock()
	sb.status = statusPaused
	sb.pausedAt = now.UTC()
	sb.pauseTier = tierMemory
	sb.demoteAt = now.Add(a.memoryGrace())
	sb.endAt = time.Time{} // lifetime is frozen while paused
	a.mu.Unlock()
	if err := a.writeState(sb); err != nil {
		return fmt.Errorf("pause sandbox %s: %w", sb.id, err)
	}
	if err := step(stepPausePaused); err != nil {
		return err
	}
	sb.log.Info("sandbox paused", "tier", tierMemory, "took", times.total(), "steps", times.String())
	return nil
}

// thaw resumes a sandbox paused in the memory tier: the runtime lets it
// run and envd's post-restore init undoes its snapshot preparation. On
// error it is frozen again and stays paused in memory. The caller holds
// sb.op with the status set to resuming.
func (a *Agent) thaw(ctx context.Context, sb *sandbox, timeout time.Duration, step func(string) error, times *stepTimes) (err error) {
	p := a.driver.(driver.Pauser) // the memory tier exists only with a Pauser
	thawed := false
	defer func() {
		if err == nil {
			return
		}
		bg := context.WithoutCancel(ctx)
		if thawed {
			// As at the pause: envd ready for a later checkpoint, then frozen.
			if perr := a.envd.prepareSnapshot(bg, sb.net.Addr(), sb.cfg.AccessToken); perr != nil {
				sb.log.Warn("prepare envd again after a failed resume", "err", perr)
			}
			if perr := p.Pause(bg, sb.rid); perr != nil {
				sb.log.Error("freeze again after a failed resume", "err", perr)
			}
		}
		a.mu.Lock()
		sb.status, sb.endAt = statusPaused, time.Time{}
		a.mu.Unlock()
		if werr := a.writeState(sb); werr != nil {
			sb.log.Error("state not persisted after a failed resume", "err", werr)
		}
		sb.log.Warn("resume failed", "tier", tierMemory, "err", err)
	}()
	if err := a.writeState(sb); err != nil {
		return fmt.Errorf("resume sandbox %s: %w", sb.id, err)
	}
	if err := step(stepResumeState); err != nil {
		return err
	}
	if err := p.Resume(ctx, sb.rid); err != nil {
		return fmt.Errorf("resume sandbox %s: %w", sb.id, err)
	}
	thawed = true
	if err := step(stepResumeThaw); err != nil {
		return err
	}
	if err := a.envd.postRestoreInit(ctx, sb.net.Addr(), sb.cfg, a.cfg.RestoreInitTimeout); err != nil {
		return fmt.Errorf("resume sandbox %s: %w", sb.id, err)
	}
	if err := step(stepResumeInit); err != nil {
		return err
	}
	if sb.proxy == nil { // adopted while paused
		sb.proxy = newSandboxProxy(a, sb)
	}
	a.mu.Lock()
	sb.status = statusRunning
	sb.endAt = time.Now().Add(timeout)
	pausedAt := sb.pausedAt
	sb.pausedAt, sb.pauseTier, sb.demoteAt = time.Time{}, "", time.Time{}
	a.mu.Unlock()
	restore := func() {
		a.mu.Lock()
		sb.pausedAt, sb.pauseTier, sb.demoteAt = pausedAt, tierMemory, time.Now().Add(a.memoryGrace())
		a.mu.Unlock()
	}
	if err := a.writeState(sb); err != nil {
		restore()
		return fmt.Errorf("resume sandbox %s: %w", sb.id, err)
	}
	if err := step(stepResumeRunning); err != nil {
		restore()
		return err
	}
	a.emit(sb.id, EventRunning)
	sb.log.Info("sandbox resumed", "tier", tierMemory, "took", times.total(), "steps", times.String())
	return nil
}

// demoteDue returns the memory-tier sandboxes to checkpoint now: those
// whose grace period is over, or all of them when the host is short of
// memory. It marks them demoting so that no other tick picks them again.
func (a *Agent) demoteDue(now time.Time, all bool) []*sandbox {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*sandbox
	for _, sb := range a.sandboxes {
		if sb.status == statusPaused && sb.pauseTier == tierMemory && !sb.demoting && (all || !now.Before(sb.demoteAt)) {
			sb.demoting = true
			out = append(out, sb)
		}
	}
	return out
}

// demoteSweep checks every ttlTick for memory-tier sandboxes to move to
// disk and demotes each in a goroutine joined by wg, under ctx made
// uncancellable: a demotion is not cut half-way by the agent stopping.
func (a *Agent) demoteSweep(ctx context.Context, wg *sync.WaitGroup) {
	t := time.NewTicker(a.cfg.ttlTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			short := false
			if a.hasMemoryTier() {
				if c, err := a.measure(false); err == nil && c.memAvail < c.memReserve {
					short = true
				}
			}
			for _, sb := range a.demoteDue(now, short) {
				wg.Go(func() {
					if err := a.demote(context.WithoutCancel(ctx), sb); err != nil {
						sb.log.Error("move paused sandbox to disk; it stays in memory", "err", err)
					}
				})
			}
		}
	}
}

// hasMemoryTier reports whether any sandbox is paused in memory.
func (a *Agent) hasMemoryTier() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, sb := range a.sandboxes {
		if sb.status == statusPaused && sb.pauseTier == tierMemory {
			return true
		}
	}
	return false
}

// demoteAll moves every memory-tier sandbox to disk now, one after the
// other, and reports how many it moved: admission calls it when a create
// or a resume does not fit next to the memory they hold.
func (a *Agent) demoteAll(ctx context.Context) int {
	n := 0
	for _, sb := range a.demoteDue(time.Now(), true) {
		if err := a.demote(context.WithoutCancel(ctx), sb); err != nil {
			sb.log.Error("move paused sandbox to disk for room; it stays in memory", "err", err)
			continue
		}
		n++
	}
	return n
}

// demote checkpoints sb, paused in memory and marked demoting, to disk. On
// a failure before its checkpoint it stays frozen in memory (the partial
// snapshot removed) and is tried again after demoteRetry; after the
// checkpoint, it is restored from the images just written and frozen
// again. Only if that fails too is it in error, its files kept. Either
// way it is never running, and never gone.
func (a *Agent) demote(ctx context.Context, sb *sandbox) (err error) {
	ctx, cancel := context.WithTimeout(ctx, pauseTimeout)
	defer cancel()
	sb.op.Lock()
	defer sb.op.Unlock()
	a.mu.Lock()
	sb.demoting = false
	ok := !sb.gone && sb.status == statusPaused && sb.pauseTier == tierMemory
	a.mu.Unlock()
	if !ok { // resumed or destroyed first
		return nil
	}
	return a.demoteLocked(ctx, sb)
}

// demoteLocked is demote for a caller that holds sb.op and has checked
// that sb is paused in memory.
func (a *Agent) demoteLocked(ctx context.Context, sb *sandbox) (err error) {
	start := time.Now()
	defer func() { a.prom.observeOp("demote", tierDisk, start, err) }()
	times := newStepTimes()
	step := a.stepHook(sb, "demote", times)
	p := a.driver.(driver.Pauser)
	cp, canCheckpoint := a.driver.(driver.Checkpointer)
	if !canCheckpoint {
		return fmt.Errorf("demote sandbox %s: driver %s cannot checkpoint: %w", sb.id, a.driver.Name(), errdefs.ErrUnimplemented)
	}
	stopped := false
	defer func() {
		if err != nil {
			a.undoDemote(ctx, sb, p, stopped, err)
		}
	}()
	if err := os.RemoveAll(snapshotDir(sb)); err != nil {
		return fmt.Errorf("demote sandbox %s: %w", sb.id, err)
	}
	// A frozen sandbox cannot be checkpointed (runsc waits for ever): it
	// runs again for the few milliseconds until the checkpoint stops it.
	// envd is still prepared from the pause.
	if err := p.Resume(ctx, sb.rid); err != nil {
		return fmt.Errorf("demote sandbox %s: %w", sb.id, err)
	}
	if err := step(stepDemoteThaw); err != nil {
		return err
	}
	if err := cp.Checkpoint(ctx, sb.rid, imagesDir(sb)); err != nil {
		if st, serr := a.driver.State(ctx, sb.rid); serr != nil || (st != driver.StateRunning && st != driver.StatePaused) {
			stopped = true
		}
		return fmt.Errorf("demote sandbox %s: %w", sb.id, err)
	}
	stopped = true
	// What the sandbox wrote in its last milliseconds, and what the gofer
	// flushed on exit.
	if err := a.layers.Sync(sb.layer); err != nil {
		return fmt.Errorf("demote sandbox %s: %w", sb.id, err)
	}
	if err := step(stepDemoteStop); err != nil {
		return err
	}
	merr, nerr := a.manifestAndRelease(ctx, sb, true)
	if merr != nil {
		return fmt.Errorf("demote sandbox %s: %w", sb.id, merr)
	}
	if err := step(stepDemoteManifest); err != nil {
		return err
	}
	if nerr != nil {
		return fmt.Errorf("demote sandbox %s: %w", sb.id, nerr)
	}
	if err := step(stepDemoteNetwork); err != nil {
		return err
	}
	a.mu.Lock()
	sb.pauseTier, sb.demoteAt = tierDisk, time.Time{}
	a.mu.Unlock()
	if err := a.writeState(sb); err != nil {
		return fmt.Errorf("demote sandbox %s: %w", sb.id, err)
	}
	if err := step(stepDemoteState); err != nil {
		return err
	}
	sb.log.Info("paused sandbox moved to disk", "took", times.total(), "steps", times.String())
	return nil
}

// undoDemote puts a sandbox whose demotion failed back in the memory tier:
// frozen again if its runtime still holds it, else restored from the
// images just written (complete once the checkpoint returned) and frozen.
// The partial snapshot is removed. A sandbox that cannot be put back is in
// error with its files kept.
func (a *Agent) undoDemote(ctx context.Context, sb *sandbox, p driver.Pauser, stopped bool, cause error) {
	ctx = context.WithoutCancel(ctx)
	err := func() error {
		if stopped {
			if _, err := a.bringUp(ctx, sb, imagesDir(sb), nil, nil); err != nil {
				return err
			}
			// bringUp's post-restore init undid the preparation.
			if err := a.envd.prepareSnapshot(ctx, sb.net.Addr(), sb.cfg.AccessToken); err != nil {
				return err
			}
			if err := a.layers.Sync(sb.layer); err != nil {
				return err
			}
		}
		st, err := a.driver.State(ctx, sb.rid)
		if err != nil {
			return err
		}
		if st == driver.StateRunning {
			return p.Pause(ctx, sb.rid)
		}
		if st != driver.StatePaused {
			return fmt.Errorf("the runtime says %s", st)
		}
		return nil
	}()
	a.mu.Lock()
	sb.pauseTier = tierMemory
	sb.demoteAt = time.Now().Add(demoteRetry)
	if err != nil {
		sb.status = statusError
		sb.pauseTier = tierDisk
		sb.errMsg = fmt.Sprintf("moving the paused sandbox to disk failed (%v) and it could not be kept in memory (%v); its files are kept", cause, err)
	}
	a.mu.Unlock()
	if werr := a.writeState(sb); werr != nil {
		sb.log.Error("state not persisted after a failed demotion", "err", werr)
	}
	if err != nil {
		sb.log.Error("demotion failed and the sandbox cannot be kept in memory", "err", cause, "restore_err", err)
		return
	}
	if rerr := os.RemoveAll(snapshotDir(sb)); rerr != nil {
		sb.log.Error("remove partial snapshot", "err", rerr)
	}
	sb.log.Warn("demotion failed; the sandbox stays paused in memory", "err", cause)
}

// admitOrDemote is called with err, an admission's refusal: when it is a
// refusal for room and sandboxes are paused in memory, they are moved to
// disk and admit, which checks admission afresh, runs once more. It
// returns err unchanged otherwise.
func (a *Agent) admitOrDemote(ctx context.Context, admit func() error, err error) error {
	// Pooled sandboxes give their room first: they are a cache.
	for errors.Is(err, errdefs.ErrExhausted) && a.evictPooled(ctx) {
		if err = admit(); err == nil {
			return nil // a.mu is held, as admit leaves it
		}
	}
	if !errors.Is(err, errdefs.ErrExhausted) || !a.hasMemoryTier() || a.demoteAll(ctx) == 0 {
		return err
	}
	return admit()
}
