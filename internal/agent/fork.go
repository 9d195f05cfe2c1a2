package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
)

// A fork (ForkSandbox) checkpoints a running sandbox once and restores the
// image as new sandboxes, each with its own ID, network, copy of the
// writable layer and access token. Who owns what:
//
//   - The source's checkpoint is written into its own snapshot directory,
//     with a manifest, while its state file says pausing: an agent that
//     dies after the checkpoint finds the source paused on disk (see
//     recoverPause), before it running. The source's restore removes it,
//     as a resume does.
//   - The forks restore from hard links of those images in a directory of
//     the call, <data>/forks/<source>-<random>, which the call owns and
//     removes when its last fork has been restored (a restore reads the
//     pages before it returns; a file it still has open outlives its
//     name). A restarted agent removes <data>/forks whole: nothing of a
//     previous process is restored from it.
//   - Each fork's directory, state file (status creating until it runs),
//     layer copy, network and runtime are its own, pushed on its cleanup
//     stack as a create's are; a restarted agent removes a fork that was
//     not running yet like a create it did not finish.

// The steps of a fork, in order; failAt hooks run after each. The
// fork-source-* steps are the source's, once per call; the others run
// for each fork.
const (
	stepForkSourceState      = "fork-source-state"      // the source's state file says pausing
	stepForkSourcePrepare    = "fork-source-prepare"    // envd flushed and is ready to freeze
	stepForkSourceSync       = "fork-source-sync"       // the layer is on the host's disk
	stepForkSourceCheckpoint = "fork-source-checkpoint" // checkpointed: the source's runtime is gone
	stepForkSourceManifest   = "fork-source-manifest"   // the checksums are recorded
	stepForkSourceImages     = "fork-source-images"     // the images are linked into the call's directory
	stepForkDir              = "fork-dir"               // the fork's directory and state file exist
	stepForkCopy             = "fork-copy"              // the fork's copy of the layer exists
	stepForkSourceRunning    = "fork-source-running"    // the source runs again
	stepForkNetwork          = "fork-network"           // the fork's network is built
	stepForkLayer            = "fork-layer"             // its layer copy is mounted
	stepForkState            = "fork-state"             // its state file records both
	stepForkRestore          = "fork-restore"           // the runtime restored it
	stepForkHealth           = "fork-health"            // its envd answers
	stepForkInit             = "fork-init"              // envd has the fork's token
	stepForkRunning          = "fork-running"           // the state file says running
)

var (
	forkSourceSteps = []string{stepForkSourceState, stepForkSourcePrepare, stepForkSourceSync, stepForkSourceCheckpoint,
		stepForkSourceManifest, stepForkSourceImages, stepForkSourceRunning}
	forkSteps = []string{stepForkDir, stepForkCopy, stepForkNetwork, stepForkLayer, stepForkState, stepForkRestore,
		stepForkHealth, stepForkInit, stepForkRunning}
)

// MaxForks bounds the forks of one ForkSandbox call.
const MaxForks = 32

// defaultForkConcurrency is how many forks of one call are restored at
// once. A restore is mostly CPU (the sentry rebuilding its state) on a
// 2-core host; see docs/architecture.md for the measurement.
const defaultForkConcurrency = 2

// forksDirName is the directory under the data dir that holds the images
// directories of fork calls in progress.
const forksDirName = "forks"

func (a *Agent) forksDir() string { return filepath.Join(a.cfg.DataDir, forksDirName) }

// forkJob is one fork of a call.
type forkJob struct {
	sb       *sandbox
	undo     cleanupStack
	created  bool // the created event was sent
	err      error
	admitted bool
}

// fork branches a running sandbox (ForkSandbox). See the comment at the
// top of this file for who owns what, and proto/agent/agent.proto for the
// contract.
func (a *Agent) fork(ctx context.Context, req *agentpb.ForkSandboxRequest) (*agentpb.ForkSandboxResponse, error) {
	id := req.GetId()
	src := a.lookup(id)
	if src == nil {
		return nil, errdefs.NotFound("sandbox %s not found", id)
	}
	if err := a.forkable(src); err != nil {
		return nil, err
	}
	jobs, err := a.forkConfigs(src, req.GetForks())
	if err != nil {
		return nil, err
	}
	// The work is not tied to the caller: a fork cut half-way helps
	// nobody, and the source must run again whatever happens.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pauseTimeout)
	defer cancel()
	if err := a.admitForks(jobs); err != nil {
		return nil, fmt.Errorf("fork sandbox %s: %w", id, err)
	}
	admitted := 0
	for _, j := range jobs {
		if j.admitted {
			admitted++
		}
	}
	// Until a fork is handed to its goroutine, this function finishes it.
	finish := func(j *forkJob) {
		if j.admitted && j.err != nil {
			a.unwindFork(ctx, j)
		}
		if j.admitted {
			j.sb.op.Unlock()
		}
	}
	images, srcToken := "", ""
	if admitted > 0 {
		images, srcToken, err = a.forkSource(ctx, src, jobs)
	}
	if err != nil {
		for _, j := range jobs {
			if j.admitted && j.err == nil {
				j.err = err
			}
			finish(j)
		}
		return nil, err
	}
	if images != "" {
		defer func() {
			if err := os.RemoveAll(filepath.Dir(images)); err != nil {
				src.log.Error("remove the images of a fork", "err", err)
			}
		}()
	}

	parallel := a.cfg.forkConcurrency
	if parallel <= 0 {
		parallel = defaultForkConcurrency
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, j := range jobs {
		if !j.admitted || j.err != nil {
			finish(j)
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			j.err = a.restoreFork(ctx, j, images, srcToken)
			finish(j)
		})
	}
	wg.Wait()

	resp := &agentpb.ForkSandboxResponse{Source: a.toProto(src)}
	made := 0
	for _, j := range jobs {
		r := &agentpb.ForkResult{Id: j.sb.id}
		if j.err != nil {
			r.Error = j.err.Error()
			r.ErrorCode = connect.CodeOf(errdefs.ToConnect(j.err)).String()
		} else {
			r.Sandbox = a.toProto(j.sb)
			made++
		}
		resp.Forks = append(resp.Forks, r)
	}
	src.log.Info("sandbox forked", "forks", made, "failed", len(jobs)-made)
	return resp, nil
}

// forkable refuses a source that cannot be forked now: one that is not
// running, or whose network gives its guest an address of its own (a
// sandbox of the unique-address layout: every restore of its checkpoint
// would claim that address).
func (a *Agent) forkable(src *sandbox) error {
	a.mu.Lock()
	st, gone, natns := src.status, src.gone, src.net.NATNS
	a.mu.Unlock()
	switch {
	case gone || st == statusCreating || st == statusStopping:
		return errdefs.NotFound("sandbox %s not found", src.id)
	case st != statusRunning:
		return errdefs.Conflict("sandbox %s is %s, not running: only a running sandbox can be forked", src.id, st)
	case natns == "":
		return errdefs.Conflict("sandbox %s has a guest address of its own (made by an agent before the shared guest address, or with unique guest addresses): it cannot be forked", src.id)
	}
	return nil
}

// forkConfigs validates the forks of a request and makes each fork's
// config: the source's, with the fork's id, timeout, access token,
// metadata and auto-pause settings. A malformed request fails whole.
func (a *Agent) forkConfigs(src *sandbox, forks []*agentpb.SandboxConfig) ([]*forkJob, error) {
	if len(forks) == 0 {
		return nil, errdefs.Invalid("fork sandbox %s: no forks requested", src.id)
	}
	if len(forks) > MaxForks {
		return nil, errdefs.Invalid("fork sandbox %s: %d forks requested, at most %d per call", src.id, len(forks), MaxForks)
	}
	a.mu.Lock()
	base := src.cfg
	a.mu.Unlock()
	seen := map[string]bool{src.id: true}
	var jobs []*forkJob
	for i, f := range forks {
		fid := f.GetId()
		if !capsulespec.ValidID(fid) {
			return nil, errdefs.Invalid("fork %d: sandbox id %q must be %d characters [a-z0-9]", i, fid, capsulespec.IDLength)
		}
		if seen[fid] {
			return nil, errdefs.Invalid("fork %d: sandbox id %s is given twice (or is the source's)", i, fid)
		}
		seen[fid] = true
		cfg := proto.Clone(base).(*agentpb.SandboxConfig)
		cfg.Id = fid
		cfg.TimeoutSeconds = f.GetTimeoutSeconds()
		if cfg.TimeoutSeconds == 0 {
			cfg.TimeoutSeconds = uint32(a.cfg.DefaultTimeout / time.Second)
		}
		cfg.AccessToken = f.GetAccessToken()
		cfg.Metadata = f.GetMetadata()
		cfg.AutoPause = f.GetAutoPause()
		cfg.AutoPauseFilesystemOnly = f.GetAutoPauseFilesystemOnly()
		if err := checkConfig(cfg); err != nil {
			return nil, fmt.Errorf("fork %d (%s): %w", i, fid, err)
		}
		jobs = append(jobs, &forkJob{sb: &sandbox{
			id:     fid,
			dir:    filepath.Join(a.sandboxesDir(), fid),
			log:    a.log.With("sandbox", fid, "fork_of", src.id),
			cfg:    cfg,
			status: statusCreating,
		}})
	}
	return jobs, nil
}

// admitForks admits each fork like a create, in order, and registers the
// admitted ones (status creating, op held by the call); a fork whose ID
// is taken or for which the host has no room fails on its own. Only
// measuring the host fails the call.
func (a *Agent) admitForks(jobs []*forkJob) error {
	capacity, err := a.measure(true)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, j := range jobs {
		if _, ok := a.sandboxes[j.sb.id]; ok {
			j.err = errdefs.AlreadyExists("sandbox %s exists", j.sb.id)
			continue
		}
		if err := a.admit(capacity, j.sb.cfg); err != nil {
			a.prom.observeRefusal("fork", err)
			j.err = fmt.Errorf("fork %s: %w", j.sb.id, err)
			continue
		}
		j.sb.op.Lock() // nobody else can hold it: it was never registered
		a.sandboxes[j.sb.id] = j.sb
		j.admitted = true
	}
	return nil
}

// forkStep runs the test hook after a step (in production a no-op).
func (a *Agent) forkStep(id, name string) error {
	if a.cfg.failAt == nil {
		return nil
	}
	if err := a.cfg.failAt(name); err != nil {
		return fmt.Errorf("fork sandbox %s: %s: %w", id, name, err)
	}
	return nil
}

// forkSource does the source's part under its op: checkpoint it as a
// disk pause does, link the images into the call's directory, make each
// admitted fork's directory and layer copy, and restore the source. It
// returns the call's images directory and the access token the image's
// envd holds. An error fails the whole call: the source runs again (or,
// if it cannot, is removed and reported crashed).
func (a *Agent) forkSource(ctx context.Context, src *sandbox, jobs []*forkJob) (images, token string, err error) {
	src.op.Lock()
	defer src.op.Unlock()
	if err := a.forkable(src); err != nil {
		return "", "", err
	}
	a.mu.Lock()
	if src.gone || src.status != statusRunning {
		a.mu.Unlock()
		return "", "", errdefs.Conflict("sandbox %s is %s, not running", src.id, src.status)
	}
	src.status = statusPausing
	endAt, token := src.endAt, src.cfg.AccessToken
	a.mu.Unlock()
	times := newStepTimes()
	step := a.stepHook(src, "fork", times)

	// restored: the source runs again, and a later failure leaves it so.
	prepared, stopped, checkpointed, restored := false, false, false, false
	callDir := ""
	defer func() {
		if err == nil {
			return
		}
		if callDir != "" {
			os.RemoveAll(callDir)
		}
		if !restored {
			a.undoPause(ctx, src, prepared, stopped, checkpointed, false, endAt, err)
			return
		}
		a.setStatus(src, statusRunning)
		if werr := a.writeState(src); werr != nil {
			src.log.Warn("state not persisted after a failed fork", "err", werr)
		}
		os.RemoveAll(snapshotDir(src))
		src.log.Warn("fork failed; the source runs again", "err", err)
	}()

	if err := os.RemoveAll(snapshotDir(src)); err != nil {
		return "", "", fmt.Errorf("fork sandbox %s: %w", src.id, err)
	}
	if err := a.writeState(src); err != nil {
		return "", "", fmt.Errorf("fork sandbox %s: %w", src.id, err)
	}
	if err := step(stepForkSourceState); err != nil {
		return "", "", err
	}
	if err := a.envd.prepareSnapshot(ctx, src.net.Addr(), src.cfg.AccessToken); err != nil {
		prepared = true
		return "", "", fmt.Errorf("fork sandbox %s: %w", src.id, err)
	}
	prepared = true
	if src.proxy != nil {
		src.proxy.transport.CloseIdleConnections()
	}
	if err := step(stepForkSourcePrepare); err != nil {
		return "", "", err
	}
	if err := a.layers.Sync(src.layer); err != nil {
		return "", "", fmt.Errorf("fork sandbox %s: %w", src.id, err)
	}
	if err := step(stepForkSourceSync); err != nil {
		return "", "", err
	}
	cp, ok := a.driver.(driver.Checkpointer)
	if !ok {
		return "", "", fmt.Errorf("fork sandbox %s: driver %s cannot checkpoint: %w", src.id, a.driver.Name(), errdefs.ErrUnimplemented)
	}
	if err := cp.Checkpoint(ctx, src.id, imagesDir(src)); err != nil {
		if st, serr := a.driver.State(ctx, src.id); serr != nil || st != driver.StateRunning {
			stopped = true
		}
		return "", "", fmt.Errorf("fork sandbox %s: %w", src.id, err)
	}
	stopped, checkpointed = true, true
	if err := a.layers.Sync(src.layer); err != nil {
		return "", "", fmt.Errorf("fork sandbox %s: %w", src.id, err)
	}
	if err := step(stepForkSourceCheckpoint); err != nil {
		return "", "", err
	}
	// As at a pause: the manifest makes the checkpoint a snapshot a
	// restarted agent can resume the source from. Unlike a pause, the
	// network stays: the source is restored into it at once.
	if _, err := writeManifest(src, a.driver.Name()); err != nil {
		return "", "", fmt.Errorf("fork sandbox %s: %w", src.id, err)
	}
	if err := step(stepForkSourceManifest); err != nil {
		return "", "", err
	}

	if callDir, err = a.linkForkImages(src); err != nil {
		return "", "", fmt.Errorf("fork sandbox %s: %w", src.id, err)
	}
	images = filepath.Join(callDir, imagesDirName)
	if err := step(stepForkSourceImages); err != nil {
		return "", "", err
	}

	// Each fork's copy of the layer is made while the source is stopped
	// and its layer synced; a fork whose copy fails fails alone.
	for _, j := range jobs {
		if j.admitted && j.err == nil {
			j.err = a.copyForkLayer(ctx, src, j)
		}
	}

	if err := a.restoreInPlace(ctx, src); err != nil {
		// undoPause tries again with the network rebuilt, as after a
		// failed pause.
		return "", "", fmt.Errorf("fork sandbox %s: restore the source: %w", src.id, err)
	}
	restored = true
	a.mu.Lock()
	src.status = statusRunning
	src.endAt = endAt
	a.mu.Unlock()
	if err := a.writeState(src); err != nil {
		return "", "", fmt.Errorf("fork sandbox %s: %w", src.id, err)
	}
	if err := step(stepForkSourceRunning); err != nil {
		return "", "", err
	}
	// The restored source owns its state again; its snapshot is spent.
	if err := os.RemoveAll(snapshotDir(src)); err != nil {
		src.log.Warn("remove the snapshot of a fork", "err", err)
	}
	src.log.Info("sandbox checkpointed for a fork and running again", "took", times.total(), "steps", times.String())
	return images, token, nil
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
			if derr := a.driver.Destroy(context.WithoutCancel(ctx), src.id); derr != nil {
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

// linkForkImages makes the call's images directory: hard links of the
// source's checkpoint, so that the source's restore may remove its own
// snapshot while the forks are still restored from these.
func (a *Agent) linkForkImages(src *sandbox) (string, error) {
	if err := os.MkdirAll(a.forksDir(), 0o700); err != nil {
		return "", err
	}
	var nonce [6]byte
	rand.Read(nonce[:])
	dir := filepath.Join(a.forksDir(), src.id+"-"+hex.EncodeToString(nonce[:]))
	images := filepath.Join(dir, imagesDirName)
	if err := os.MkdirAll(images, 0o700); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(imagesDir(src))
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	for _, e := range entries {
		if err := os.Link(filepath.Join(imagesDir(src), e.Name()), filepath.Join(images, e.Name())); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("link checkpoint image: %w", err)
		}
	}
	return dir, nil
}

// copyForkLayer makes fork j's directory, its first state file and its
// copy of the source's writable layer. The caller holds both ops, and
// the source is stopped with its layer synced.
func (a *Agent) copyForkLayer(ctx context.Context, src *sandbox, j *forkJob) error {
	sb := j.sb
	sb.tplPath, sb.envdVersion = src.tplPath, src.envdVersion
	if err := os.Mkdir(sb.dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return errdefs.AlreadyExists("sandbox %s: directory %s exists", sb.id, sb.dir)
		}
		return fmt.Errorf("fork sandbox %s: %w", sb.id, err)
	}
	j.undo.push(stepForkDir, func(context.Context) error { return os.RemoveAll(sb.dir) })
	// Written before anything outside the directory exists, and kept
	// saying creating until the fork runs: a restarted agent removes
	// what the record names.
	if err := a.writeState(sb); err != nil {
		return fmt.Errorf("fork sandbox %s: %w", sb.id, err)
	}
	if err := a.forkStep(sb.id, stepForkDir); err != nil {
		return err
	}
	start := time.Now()
	layer, err := a.layers.Clone(ctx, src.layer, sb.dir)
	if err != nil {
		return fmt.Errorf("fork sandbox %s: %w", sb.id, err)
	}
	a.mu.Lock()
	sb.layer = layer
	sb.cfg.DiskBytes = layer.SizeBytes
	a.mu.Unlock()
	j.undo.push(stepForkCopy, func(ctx context.Context) error { return a.layers.Unmount(ctx, sb.layer) })
	if err := a.writeState(sb); err != nil {
		return fmt.Errorf("fork sandbox %s: %w", sb.id, err)
	}
	sb.log.Debug("writable layer copied", "took", time.Since(start))
	return a.forkStep(sb.id, stepForkCopy)
}

// restoreFork brings fork j up from the call's images: its network, its
// layer copy mounted, the runtime restored under its ID, envd healthy and
// its token (srcToken, the source's) replaced by the fork's. The caller
// holds j's op.
func (a *Agent) restoreFork(ctx context.Context, j *forkJob, images, srcToken string) error {
	sb := j.sb
	step := func(name string) error { return a.forkStep(sb.id, name) }
	start := time.Now()
	opts, err := networkOptions(sb.cfg)
	if err != nil {
		return err
	}
	n, err := a.net.Setup(ctx, sb.id, opts)
	if err != nil {
		return fmt.Errorf("fork sandbox %s: %w", sb.id, err)
	}
	a.mu.Lock()
	sb.net = n
	a.mu.Unlock()
	j.undo.push(stepForkNetwork, func(ctx context.Context) error { return a.net.Teardown(ctx, sb.net) })
	if err := step(stepForkNetwork); err != nil {
		return err
	}
	if err := a.writeState(sb); err != nil {
		return fmt.Errorf("fork sandbox %s: %w", sb.id, err)
	}
	if err := a.layers.Remount(ctx, sb.layer); err != nil {
		return fmt.Errorf("fork sandbox %s: %w", sb.id, err)
	}
	if err := step(stepForkLayer); err != nil {
		return err
	}
	// The logs live on the layer, as at create; the copy's are the
	// source's, and the fork starts its own.
	if err := os.RemoveAll(logDir(sb)); err != nil {
		return fmt.Errorf("fork sandbox %s: %w", sb.id, err)
	}
	if err := os.Mkdir(logDir(sb), 0o700); err != nil {
		return fmt.Errorf("fork sandbox %s: %w", sb.id, err)
	}
	if err := a.writeState(sb); err != nil {
		return fmt.Errorf("fork sandbox %s: %w", sb.id, err)
	}
	if err := step(stepForkState); err != nil {
		return err
	}
	cp := a.driver.(driver.Checkpointer) // forkSource checked
	if err := cp.Restore(ctx, driverSpec(sb), images); err != nil {
		return fmt.Errorf("fork sandbox %s: %w", sb.id, err)
	}
	j.undo.push(stepForkRestore, func(ctx context.Context) error { return a.driver.Destroy(ctx, sb.id) })
	a.emit(sb.id, EventCreated)
	j.created = true
	if err := step(stepForkRestore); err != nil {
		return err
	}
	hctx, cancel := context.WithTimeout(ctx, a.cfg.ReadyTimeout)
	err = a.envd.waitHealthy(hctx, sb.net.Addr())
	cancel()
	if err != nil {
		return fmt.Errorf("fork sandbox %s: envd did not answer within %s: %w", sb.id, a.cfg.ReadyTimeout, err)
	}
	if err := step(stepForkHealth); err != nil {
		return err
	}
	// envd holds the source's token until this /init, which the source's
	// token authenticates and which replaces it with the fork's.
	if err := a.envd.forkInit(ctx, sb.net.Addr(), srcToken, sb.cfg, a.cfg.RestoreInitTimeout); err != nil {
		return fmt.Errorf("fork sandbox %s: %w", sb.id, err)
	}
	if err := step(stepForkInit); err != nil {
		return err
	}
	sb.startedAt = time.Now()
	sb.proxy = newSandboxProxy(a, sb)
	a.mu.Lock()
	sb.status = statusRunning
	sb.endAt = sb.startedAt.Add(time.Duration(sb.cfg.TimeoutSeconds) * time.Second)
	a.mu.Unlock()
	if err := a.writeState(sb); err != nil {
		a.setStatus(sb, statusCreating)
		return fmt.Errorf("fork sandbox %s: %w", sb.id, err)
	}
	if err := step(stepForkRunning); err != nil {
		a.setStatus(sb, statusCreating)
		return err
	}
	a.emit(sb.id, EventRunning)
	sb.log.Info("sandbox running (fork)", "took", time.Since(start), "address", sb.net.Addr())
	return nil
}

// unwindFork removes everything of a failed fork and forgets it. The
// caller holds its op.
func (a *Agent) unwindFork(ctx context.Context, j *forkJob) {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
	defer cancel()
	if err := j.undo.unwind(bg); err != nil {
		j.sb.log.Error("cleanup after a failed fork left something behind", "err", err)
	}
	a.forget(j.sb)
	if j.created {
		a.emit(j.sb.id, EventStopped)
	}
	j.sb.log.Warn("fork failed", "err", j.err)
}

// removeForkLeftovers removes the images directories of fork calls that a
// previous agent process did not finish. Called by recover, alone.
func (a *Agent) removeForkLeftovers() error {
	if err := os.RemoveAll(a.forksDir()); err != nil {
		return fmt.Errorf("remove images of unfinished forks: %w", err)
	}
	return nil
}
