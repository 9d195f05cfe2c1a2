package agent

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/protobuf/proto"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
)

// pauseTimeout bounds a whole pause or resume (a multi-GiB memory image
// takes seconds to write and to read). Both run under the agent's own
// context, not the caller's: a caller that goes away cannot cut a
// checkpoint or a restore half-way.
const pauseTimeout = 10 * time.Minute

// The steps of a pause, in order; failAt hooks run after each.
const (
	stepPauseState    = "pause-state"    // the state file says pausing
	stepPausePrepare  = "pause-prepare"  // envd flushed and is ready to freeze
	stepPauseSync     = "pause-sync"     // the layer is on the host's disk
	stepPauseStop     = "pause-stop"     // checkpointed (or stopped): the runtime is gone
	stepPauseManifest = "pause-manifest" // the snapshot's checksums are recorded
	stepPauseNetwork  = "pause-network"  // the kernel network objects are gone
	stepPausePaused   = "pause-paused"   // the state file says paused
	stepResumeState   = "resume-state"   // the state file says resuming
	stepResumeNetwork = "resume-network" // the network is built again, same address
	stepResumeLayer   = "resume-layer"   // the writable layer is mounted
	stepResumeVerify  = "resume-verify"  // the snapshot matches its manifest (checked meanwhile)
	stepResumeStart   = "resume-start"   // the runtime restored (or booted) it
	stepResumeHealth  = "resume-health"  // envd answers
	stepResumeInit    = "resume-init"    // envd's post-restore init is done
	stepResumeRunning = "resume-running" // the state file says running
)

var (
	pauseSteps  = []string{stepPauseState, stepPausePrepare, stepPauseSync, stepPauseStop, stepPauseManifest, stepPauseNetwork, stepPausePaused}
	resumeSteps = []string{stepResumeState, stepResumeNetwork, stepResumeLayer, stepResumeVerify, stepResumeStart, stepResumeHealth, stepResumeInit, stepResumeRunning}
)

// stepHook returns the end-of-step hook of sb's operation op: it records
// the step's duration in times and runs the test hook (in production a
// no-op).
func (a *Agent) stepHook(sb *sandbox, op string, times *stepTimes) func(name string) error {
	return func(name string) error {
		a.prom.observeStep(op, name, times.mark(name))
		if a.cfg.failAt == nil {
			return nil
		}
		if err := a.cfg.failAt(name); err != nil {
			return fmt.Errorf("%s sandbox %s: %s: %w", op, sb.id, name, err)
		}
		return nil
	}
}

// pause pauses sandbox id: with its memory (frozen in memory for the grace
// period, else a checkpoint to disk), or with fsOnly only its writable
// layer. It returns once the sandbox is paused.
// Pausing a paused sandbox is errdefs.ErrConflict (failed_precondition).
func (a *Agent) pause(ctx context.Context, id string, fsOnly bool) (*agentpb.Sandbox, error) {
	sb := a.lookup(id)
	if sb == nil {
		return nil, errdefs.NotFound("sandbox %s not found", id)
	}
	sb.op.Lock()
	defer sb.op.Unlock()
	a.mu.Lock()
	st, gone := sb.status, sb.gone
	if !gone && st == statusRunning {
		sb.status = statusPausing
	}
	a.mu.Unlock()
	switch {
	case gone || st == statusCreating || st == statusStopping:
		return nil, errdefs.NotFound("sandbox %s not found", id)
	case st == statusPaused:
		return nil, errdefs.Conflict("sandbox %s is paused already", id)
	case st != statusRunning:
		return nil, errdefs.Conflict("sandbox %s is %s", id, st)
	}
	if err := a.doPause(ctx, sb, fsOnly); err != nil {
		return nil, err
	}
	return a.toProto(sb), nil
}

// doPause pauses sb, whose status the caller set to pausing, holding
// sb.op. On failure the sandbox is running again (with the partial
// snapshot removed) or, if it cannot be started again, removed (and
// reported crashed): never half-paused.
func (a *Agent) doPause(ctx context.Context, sb *sandbox, fsOnly bool) (err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pauseTimeout)
	defer cancel()
	times := newStepTimes()
	step := a.stepHook(sb, "pause", times)
	cp, canCheckpoint := a.driver.(driver.Checkpointer)
	if !fsOnly && !canCheckpoint {
		a.setStatus(sb, statusRunning)
		return fmt.Errorf("pause sandbox %s: driver %s cannot checkpoint: %w", sb.id, a.driver.Name(), errdefs.ErrUnimplemented)
	}
	a.mu.Lock()
	endAt := sb.endAt
	// Recorded from the start, so that a restarted agent knows what a
	// pause cut after its stop was making.
	sb.fsOnly = fsOnly
	a.mu.Unlock()

	// checkpointed: the runtime wrote the images whole (they are
	// complete when checkpoint returns), so a failure after it can
	// restore from them even before the manifest is written.
	prepared, stopped, checkpointed := false, false, false
	defer func() {
		if err == nil {
			return
		}
		a.undoPause(ctx, sb, prepared, stopped, checkpointed, fsOnly, endAt, err)
	}()

	if err := os.RemoveAll(snapshotDir(sb)); err != nil { // a leftover of a crashed pause
		return fmt.Errorf("pause sandbox %s: %w", sb.id, err)
	}
	if err := a.writeState(sb); err != nil {
		return fmt.Errorf("pause sandbox %s: %w", sb.id, err)
	}
	if err := step(stepPauseState); err != nil {
		return err
	}

	if err := a.envd.prepareSnapshot(ctx, sb.net.Addr(), sb.cfg.AccessToken); err != nil {
		prepared = true // it may have been applied before the answer was lost
		return fmt.Errorf("pause sandbox %s: %w", sb.id, err)
	}
	prepared = true
	if sb.proxy != nil {
		// Kept connections would point at the network about to go.
		sb.proxy.transport.CloseIdleConnections()
	}
	if err := step(stepPausePrepare); err != nil {
		return err
	}
	// envd's sync(2) wrote the sandbox's cached data through to the layer;
	// this puts the layer itself on the host's disk.
	if err := a.layers.Sync(sb.layer); err != nil {
		return fmt.Errorf("pause sandbox %s: %w", sb.id, err)
	}
	if err := step(stepPauseSync); err != nil {
		return err
	}
	if p, ok := a.driver.(driver.Pauser); ok && !fsOnly && a.memoryGrace() > 0 {
		return a.freeze(ctx, sb, p, step, times)
	}

	if fsOnly {
		err = a.driver.Destroy(ctx, sb.rid)
	} else {
		err = cp.Checkpoint(ctx, sb.rid, imagesDir(sb))
	}
	if err != nil {
		// A failed checkpoint may or may not have ended the sandbox.
		if st, serr := a.driver.State(ctx, sb.rid); serr != nil || st != driver.StateRunning {
			stopped = true
		}
		return fmt.Errorf("pause sandbox %s: %w", sb.id, err)
	}
	stopped, checkpointed = true, !fsOnly
	// The gofer closed its files on exit: flush what it wrote last.
	if err := a.layers.Sync(sb.layer); err != nil {
		return fmt.Errorf("pause sandbox %s: %w", sb.id, err)
	}
	if err := step(stepPauseStop); err != nil {
		return err
	}

	// The slot, and so the guest's address, stays reserved: gVisor
	// restores the netstack with the address it had. The kernel's network
	// objects go while the manifest is written (the netlink teardown waits
	// on the kernel, the checksums read the image; each takes tens of
	// milliseconds); both are done before anything goes on.
	merr, nerr := a.manifestAndRelease(ctx, sb, !fsOnly)
	if merr != nil {
		return fmt.Errorf("pause sandbox %s: %w", sb.id, merr)
	}
	if err := step(stepPauseManifest); err != nil {
		return err
	}
	if nerr != nil {
		return fmt.Errorf("pause sandbox %s: %w", sb.id, nerr)
	}
	if err := step(stepPauseNetwork); err != nil {
		return err
	}

	a.mu.Lock()
	sb.status = statusPaused
	sb.pausedAt = time.Now().UTC()
	sb.pauseTier = tierDisk
	sb.fsOnly = fsOnly
	sb.endAt = time.Time{} // lifetime is frozen while paused
	a.mu.Unlock()
	if err := a.writeState(sb); err != nil {
		return fmt.Errorf("pause sandbox %s: %w", sb.id, err)
	}
	if err := step(stepPausePaused); err != nil {
		return err
	}
	sb.log.Info("sandbox paused", "filesystem_only", fsOnly, "took", times.total(), "steps", times.String())
	return nil
}

// undoPause brings a sandbox whose pause failed back to running: a
// sandbox that still runs gets envd's preparation undone; one whose
// runtime is gone is restored from the snapshot just written (or booted
// again from its disk). The partial snapshot is removed. If it cannot run
// again it is removed and reported crashed, so that GetSandbox answers
// not_found and no frozen sandbox claims to run.
func (a *Agent) undoPause(ctx context.Context, sb *sandbox, prepared, stopped, checkpointed, fsOnly bool, endAt time.Time, cause error) {
	ctx = context.WithoutCancel(ctx)
	a.mu.Lock()
	sb.pausedAt, sb.pauseTier, sb.fsOnly = time.Time{}, "", false
	sb.endAt = endAt
	a.mu.Unlock()
	var err error
	if !stopped {
		if prepared {
			// The first /init after a prepare undoes it, as after a restore.
			err = a.envd.postRestoreInit(ctx, sb.net.Addr(), sb.cfg, a.cfg.RestoreInitTimeout)
		}
	} else {
		images := ""
		if checkpointed {
			images = imagesDir(sb)
		}
		if images == "" && !fsOnly {
			err = fmt.Errorf("no complete snapshot to restore from")
		} else {
			_, err = a.bringUp(ctx, sb, images, nil, nil)
		}
	}
	if err == nil {
		a.setStatus(sb, statusRunning)
		if werr := a.writeState(sb); werr != nil {
			sb.log.Warn("state not persisted after a failed pause", "err", werr)
		}
		if rerr := os.RemoveAll(snapshotDir(sb)); rerr != nil {
			sb.log.Error("remove partial snapshot", "err", rerr)
		}
		sb.log.Warn("pause failed; the sandbox runs again", "err", cause)
		return
	}
	sb.log.Error("pause failed and the sandbox cannot run again; removing it", "err", cause, "restart_err", err)
	a.setStatus(sb, statusStopping)
	if sb.proxy != nil {
		sb.proxy.close()
	}
	if terr := a.teardown(ctx, sb); terr != nil {
		sb.log.Error("remove sandbox after a failed pause", "err", terr)
		return
	}
	a.forget(sb)
	a.emit(sb.id, EventCrashed)
}

// setStatus sets sb's status under a.mu.
func (a *Agent) setStatus(sb *sandbox, st status) {
	a.mu.Lock()
	sb.status = st
	a.mu.Unlock()
}

// bringUp starts sb again in the network slot and on the layer it kept:
// restored from images, or booted fresh from its disk when images is ""
// (then initialised as at create, with the secrets of sb.cfg). On error it
// undoes what it made; on success it returns the undo for a later step
// that fails. gate, if not nil, runs just before the runtime starts, and
// its error fails bringUp. The caller holds sb.op.
func (a *Agent) bringUp(ctx context.Context, sb *sandbox, images string, step func(string) error, gate func() error) (_ cleanupStack, err error) {
	if step == nil {
		step = func(string) error { return nil }
	}
	if gate == nil {
		gate = func() error { return nil }
	}
	var undo cleanupStack
	defer func() {
		if err != nil {
			bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
			defer cancel()
			if uerr := undo.unwind(bg); uerr != nil {
				sb.log.Error("undo of a failed start left something behind", "err", uerr)
			}
		}
	}()
	opts, err := networkOptions(sb.cfg)
	if err != nil {
		return nil, err
	}
	n, err := a.net.Rebuild(ctx, sb.net, opts)
	if err != nil {
		return nil, err
	}
	a.mu.Lock() // readers outside the sandbox's op (monitor, proxy, API) take a.mu
	sb.net = n
	a.mu.Unlock()
	undo.push("network", func(ctx context.Context) error { return a.net.Release(ctx, sb.net) })
	if err := step(stepResumeNetwork); err != nil {
		return nil, err
	}
	if sb.layer.Root != "" {
		// After a reboot of the host its mounts are gone; the image is
		// not.
		if err := a.layers.Remount(ctx, sb.layer); err != nil {
			return nil, err
		}
	}
	if err := step(stepResumeLayer); err != nil {
		return nil, err
	}
	if err := gate(); err != nil {
		return nil, err
	}
	if images != "" {
		cp, ok := a.driver.(driver.Checkpointer)
		if !ok {
			return nil, fmt.Errorf("driver %s cannot restore: %w", a.driver.Name(), errdefs.ErrUnimplemented)
		}
		err = cp.Restore(ctx, driverSpec(sb), images)
	} else {
		err = a.driver.Create(ctx, driverSpec(sb))
	}
	if err != nil {
		return nil, err
	}
	undo.push("runtime", func(ctx context.Context) error { return a.driver.Destroy(ctx, sb.rid) })
	if err := step(stepResumeStart); err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, a.cfg.ReadyTimeout)
	err = a.envd.waitHealthy(hctx, sb.net.Addr())
	cancel()
	if err != nil {
		return nil, fmt.Errorf("envd did not answer within %s: %w", a.cfg.ReadyTimeout, err)
	}
	if err := step(stepResumeHealth); err != nil {
		return nil, err
	}
	if images != "" {
		err = a.envd.postRestoreInit(ctx, sb.net.Addr(), sb.cfg, a.cfg.RestoreInitTimeout)
	} else {
		err = a.envd.sendInit(ctx, sb.net.Addr(), sb.cfg)
	}
	if err != nil {
		return nil, err
	}
	if err := step(stepResumeInit); err != nil {
		return nil, err
	}
	return undo, nil
}

// resume resumes a paused sandbox and returns once its envd answers. A
// snapshot that fails its checksum is errdefs.ErrDataLoss: the sandbox
// goes to error with its files kept. Any other failure leaves it paused,
// with what the resume started destroyed.
func (a *Agent) resume(ctx context.Context, req *agentpb.ResumeSandboxRequest) (*agentpb.Sandbox, error) {
	id := req.GetId()
	sb := a.lookup(id)
	if sb == nil {
		return nil, errdefs.NotFound("sandbox %s not found", id)
	}
	timeout := time.Duration(req.GetTimeoutSeconds()) * time.Second
	if timeout == 0 {
		timeout = a.cfg.DefaultTimeout
	}
	capacity, err := a.measure(false)
	if err != nil {
		return nil, fmt.Errorf("resume sandbox %s: %w", id, err)
	}
	sb.op.Lock()
	defer sb.op.Unlock()
	admit := func(capacity hostCapacity) (st status, gone bool, errMsg string, admitErr error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		st, gone, errMsg = sb.status, sb.gone, sb.errMsg
		if !gone && st == statusPaused {
			// A resume from disk takes memory again: admitted like a
			// create, under the same hold of a.mu as the status change.
			// One in memory holds its memory still.
			if sb.pauseTier != tierMemory {
				admitErr = a.admitMemory(capacity, sb, sb.cfg.GetMemoryMb())
			}
			if admitErr == nil {
				sb.status = statusResuming
			}
		}
		return st, gone, errMsg, admitErr
	}
	st, gone, errMsg, admitErr := admit(capacity)
	if admitErr != nil {
		// Sandboxes paused in memory give it up for a resume from disk
		// (this one is on disk: its op, held here, is not one of theirs).
		admitErr = a.admitOrDemote(ctx, func() error {
			c, err := a.measure(false)
			if err != nil {
				return err
			}
			st, gone, errMsg, err = admit(c)
			return err
		}, admitErr)
	}
	if admitErr != nil {
		a.prom.observeRefusal("resume", admitErr)
		return nil, fmt.Errorf("resume sandbox %s: %w", id, admitErr)
	}
	switch {
	case gone || st == statusCreating || st == statusStopping:
		return nil, errdefs.NotFound("sandbox %s not found", id)
	case st == statusError:
		return nil, errdefs.Conflict("sandbox %s cannot be resumed: %s", id, errMsg)
	case st != statusPaused:
		return nil, errdefs.Conflict("sandbox %s is %s, not paused", id, st)
	}
	if err := a.doResume(ctx, sb, req, timeout); err != nil {
		return nil, err
	}
	return a.toProto(sb), nil
}

func (a *Agent) doResume(ctx context.Context, sb *sandbox, req *agentpb.ResumeSandboxRequest, timeout time.Duration) (err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pauseTimeout)
	defer cancel()
	times := newStepTimes()
	step := a.stepHook(sb, "resume", times)
	a.mu.Lock()
	fsOnly, pausedAt, tier := sb.fsOnly, sb.pausedAt, sb.pauseTier
	a.mu.Unlock()
	if tier == tierMemory && req.GetDiscardMemory() {
		// Boot from the disk: the frozen sandbox goes to the disk tier
		// first, by the demotion every memory pause may take, so that a
		// failed boot leaves it paused on disk like any other.
		if err := a.demoteLocked(ctx, sb); err != nil {
			return fmt.Errorf("resume sandbox %s without memory: %w", sb.id, err)
		}
		a.mu.Lock()
		fsOnly, pausedAt, tier = sb.fsOnly, sb.pausedAt, sb.pauseTier
		a.mu.Unlock()
	}
	if tier == tierMemory {
		return a.thaw(ctx, sb, timeout, step, times)
	}
	// boot: a fresh boot on the kept layer, for a filesystem-only pause
	// or a caller that drops the memory (the snapshot is then unused and
	// removed with it once the sandbox runs).
	boot := fsOnly || req.GetDiscardMemory()
	// restorePaused puts back the pause fields when a step after they
	// were cleared fails.
	restorePaused := func() {
		a.mu.Lock()
		sb.endAt = time.Time{}
		sb.pausedAt, sb.pauseTier, sb.fsOnly = pausedAt, tier, fsOnly
		a.mu.Unlock()
	}
	dataLoss := false
	var undo cleanupStack
	defer func() {
		if err == nil {
			return
		}
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
		defer cancel()
		if uerr := undo.unwind(bg); uerr != nil {
			sb.log.Error("undo of a failed resume left something behind", "err", uerr)
		}
		if dataLoss {
			a.mu.Lock()
			sb.status = statusError
			sb.errMsg = err.Error()
			a.mu.Unlock()
		} else {
			a.setStatus(sb, statusPaused)
		}
		if werr := a.writeState(sb); werr != nil {
			sb.log.Error("state not persisted after a failed resume", "err", werr)
		}
		sb.log.Warn("resume failed", "err", err, "data_loss", dataLoss)
	}()

	if err := a.writeState(sb); err != nil {
		return fmt.Errorf("resume sandbox %s: %w", sb.id, err)
	}
	if err := step(stepResumeState); err != nil {
		return err
	}
	images := ""
	// gate runs in bringUp just before the runtime starts: the snapshot
	// is checked (reading the images) while the network is built, and
	// nothing is restored unless it matches its manifest.
	gate := func() error { return step(stepResumeVerify) }
	if !boot {
		images = imagesDir(sb)
		verified := make(chan error, 1)
		go func() { verified <- verifySnapshot(sb) }()
		joined := false
		join := func() error {
			joined = true
			return <-verified
		}
		defer func() {
			if !joined { // bringUp failed before its gate
				join()
			}
		}()
		gate = func() error {
			if err := join(); err != nil {
				dataLoss = true
				return err
			}
			return step(stepResumeVerify)
		}
	} else if req.GetAccessToken() != "" || len(req.GetEnvVars()) > 0 {
		// A fresh boot is initialised as at create: with the caller's
		// secrets if it sends them, else with the ones of the create.
		cfg := proto.Clone(sb.cfg).(*agentpb.SandboxConfig)
		if req.GetAccessToken() != "" {
			cfg.AccessToken = req.GetAccessToken()
		}
		if len(req.GetEnvVars()) > 0 {
			cfg.EnvVars = req.GetEnvVars()
		}
		a.mu.Lock()
		sb.cfg = cfg
		a.mu.Unlock()
	}
	undo, err = a.bringUp(ctx, sb, images, step, gate)
	if err != nil {
		return fmt.Errorf("resume sandbox %s: %w", sb.id, err)
	}
	if sb.proxy == nil { // adopted while paused
		sb.proxy = newSandboxProxy(a, sb)
	}
	a.mu.Lock()
	sb.status = statusRunning
	sb.endAt = time.Now().Add(timeout)
	sb.pausedAt, sb.pauseTier, sb.fsOnly = time.Time{}, "", false
	a.mu.Unlock()
	if err := a.writeState(sb); err != nil {
		restorePaused()
		return fmt.Errorf("resume sandbox %s: %w", sb.id, err)
	}
	if err := step(stepResumeRunning); err != nil {
		restorePaused()
		return err
	}
	// The snapshot served its purpose; the running sandbox owns its
	// state now. A crash before this line leaves it for adoption to
	// remove.
	if err := os.RemoveAll(snapshotDir(sb)); err != nil {
		sb.log.Warn("remove used snapshot", "err", err)
	}
	a.emit(sb.id, EventRunning)
	sb.log.Info("sandbox resumed", "filesystem_only", fsOnly, "memory_discarded", boot && !fsOnly, "took", times.total(), "steps", times.String())
	return nil
}

// manifestAndRelease writes sb's snapshot manifest (if withManifest) while
// its network's kernel objects are released, and returns both errors: the
// netlink teardown waits on the kernel and the checksums read the image,
// so the two overlap. Used by a disk pause and by a demotion.
func (a *Agent) manifestAndRelease(ctx context.Context, sb *sandbox, withManifest bool) (manifestErr, networkErr error) {
	released := make(chan error, 1)
	go func() { released <- a.net.Release(ctx, sb.net) }()
	if withManifest {
		_, manifestErr = writeManifest(sb, a.driver.Name())
	}
	return manifestErr, <-released
}
