package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/errdefs"
)

// A fork (ForkSandbox) and a snapshot (CreateSnapshot) start the same
// way: the running source is checkpointed once, as a disk pause does, its
// images are linked to where the call keeps them, something is copied
// while the source is stopped with its layer synced (each fork's layer,
// or the snapshot's), and the source is restored in place and runs on.
// checkpointSource is that shared part; fork.go and snapshot_create.go
// are what differs.

// sourceSteps names the steps of a source's checkpoint for one kind of
// call; failAt hooks run after each.
type sourceSteps struct {
	op         string // "fork" or "snapshot": errors and logs say it
	state      string // the source's state file says pausing
	prepare    string // envd flushed and is ready to freeze
	sync       string // the layer is on the host's disk
	checkpoint string // checkpointed: the source's runtime is gone
	manifest   string // the checksums are recorded
	images     string // the images are linked to where the call keeps them
	running    string // the source runs again
}

// names lists the steps in order.
func (s sourceSteps) names() []string {
	return []string{s.state, s.prepare, s.sync, s.checkpoint, s.manifest, s.images, s.running}
}

// checkpointSource does the source's part of a fork or a snapshot under
// src.op. It checkpoints the running src into its own snapshot directory
// with a manifest (its state file saying pausing: an agent that dies
// after the checkpoint finds the source paused on disk, see
// recoverPause); keep then links those images to where the call keeps
// them and returns the directory it made; stopped runs while the source
// is stopped and its layer synced; then the source is restored into the
// network it kept and its own snapshot removed. It returns the access
// token the image's envd holds.
//
// On error the directory keep made is removed, and the source runs again
// (or, if it cannot, is removed and reported crashed, so that GetSandbox
// says not_found). An error of stopped fails the call too, once the
// source runs again.
func (a *Agent) checkpointSource(ctx context.Context, src *sandbox, steps sourceSteps,
	keep func() (string, error), stopped func() error) (token string, err error) {
	src.op.Lock()
	defer src.op.Unlock()
	if err := a.forkable(src); err != nil {
		return "", err
	}
	a.mu.Lock()
	if src.gone || src.status != statusRunning {
		a.mu.Unlock()
		return "", errdefs.Conflict("sandbox %s is %s, not running", src.id, src.status)
	}
	src.status = statusPausing
	endAt, token := src.endAt, src.cfg.AccessToken
	a.mu.Unlock()
	times := newStepTimes()
	step := a.stepHook(src, steps.op, times)
	wrap := func(err error) error { return fmt.Errorf("%s sandbox %s: %w", steps.op, src.id, err) }

	// restored: the source runs again, and a later failure leaves it so.
	prepared, isStopped, checkpointed, restored := false, false, false, false
	kept := ""
	defer func() {
		if err == nil {
			return
		}
		if kept != "" {
			os.RemoveAll(kept)
		}
		if !restored {
			a.undoPause(ctx, src, prepared, isStopped, checkpointed, false, endAt, err)
			return
		}
		a.setStatus(src, statusRunning)
		if werr := a.writeState(src); werr != nil {
			src.log.Warn("state not persisted after a failed "+steps.op, "err", werr)
		}
		os.RemoveAll(snapshotDir(src))
		src.log.Warn(steps.op+" failed; the source runs again", "err", err)
	}()

	if err := os.RemoveAll(snapshotDir(src)); err != nil {
		return "", wrap(err)
	}
	if err := a.writeState(src); err != nil {
		return "", wrap(err)
	}
	if err := step(steps.state); err != nil {
		return "", err
	}
	if err := a.envd.prepareSnapshot(ctx, src.net.Addr(), src.cfg.AccessToken); err != nil {
		prepared = true
		return "", wrap(err)
	}
	prepared = true
	if src.proxy != nil {
		src.proxy.transport.CloseIdleConnections()
	}
	if err := step(steps.prepare); err != nil {
		return "", err
	}
	if err := a.layers.Sync(src.layer); err != nil {
		return "", wrap(err)
	}
	if err := step(steps.sync); err != nil {
		return "", err
	}
	cp, ok := a.driver.(driver.Checkpointer)
	if !ok {
		return "", wrap(fmt.Errorf("driver %s cannot checkpoint: %w", a.driver.Name(), errdefs.ErrUnimplemented))
	}
	if err := cp.Checkpoint(ctx, src.rid, imagesDir(src)); err != nil {
		if st, serr := a.driver.State(ctx, src.rid); serr != nil || st != driver.StateRunning {
			isStopped = true
		}
		return "", wrap(err)
	}
	isStopped, checkpointed = true, true
	if err := a.layers.Sync(src.layer); err != nil {
		return "", wrap(err)
	}
	if err := step(steps.checkpoint); err != nil {
		return "", err
	}
	// As at a pause: the manifest makes the checkpoint a snapshot a
	// restarted agent can resume the source from. Unlike a pause, the
	// network stays: the source is restored into it at once.
	if _, err := writeManifest(src, a.driver.Name()); err != nil {
		return "", wrap(err)
	}
	if err := step(steps.manifest); err != nil {
		return "", err
	}
	if kept, err = keep(); err != nil {
		return "", wrap(err)
	}
	if err := step(steps.images); err != nil {
		return "", err
	}
	stoppedErr := stopped()

	if err := a.restoreInPlace(ctx, src); err != nil {
		// undoPause tries again with the network rebuilt, as after a
		// failed pause.
		return "", wrap(fmt.Errorf("restore the source: %w", err))
	}
	restored = true
	a.mu.Lock()
	src.status = statusRunning
	src.endAt = endAt
	a.mu.Unlock()
	if err := a.writeState(src); err != nil {
		return "", wrap(err)
	}
	if stoppedErr != nil {
		return "", stoppedErr
	}
	if err := step(steps.running); err != nil {
		return "", err
	}
	// The restored source owns its state again; its snapshot is spent.
	if err := os.RemoveAll(snapshotDir(src)); err != nil {
		src.log.Warn("remove the snapshot of a "+steps.op, "err", err)
	}
	src.log.Info("sandbox checkpointed for a "+steps.op+" and running again", "took", times.total(), "steps", times.String())
	return token, nil
}

// restoreInPlace restores the checkpointed source from its own images
// into the network it kept (its address put back on the interface: the
// ~90 ms of a network's release and rebuild are spared), waits for envd
// and sends the post-restore /init. On error the runtime it started is
// gone again. The caller holds src.op.
func (a *Agent) restoreInPlace(ctx context.Context, src *sandbox) (err error) {
	if err := a.net.Readd(ctx, src.net); err != nil {
		return err
	}
	if err := a.driver.(driver.Checkpointer).Restore(ctx, driverSpec(src), imagesDir(src)); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if derr := a.driver.Destroy(context.WithoutCancel(ctx), src.rid); derr != nil {
				src.log.Error("remove the source's runtime after a failed restore", "err", derr)
			}
		}
	}()
	hctx, cancel := context.WithTimeout(ctx, a.cfg.ReadyTimeout)
	err = a.envd.waitHealthy(hctx, src.net.Addr())
	cancel()
	if err != nil {
		return fmt.Errorf("envd did not answer within %s: %w", a.cfg.ReadyTimeout, err)
	}
	return a.envd.postRestoreInit(ctx, src.net.Addr(), src.cfg, a.cfg.RestoreInitTimeout)
}

// linkImages makes the directory to and hard-links every file of the
// images directory from into it: the links outlive the source's own
// snapshot, which its restore removes, at the cost of no copy. On error
// to is removed.
func linkImages(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		os.RemoveAll(to)
		return err
	}
	for _, e := range entries {
		if err := os.Link(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			os.RemoveAll(to)
			return fmt.Errorf("link checkpoint image: %w", err)
		}
	}
	return nil
}
