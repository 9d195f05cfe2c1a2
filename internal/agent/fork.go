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
	"nestbox.dev/internal/rootfs"
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
//
// The source's part is checkpointSource (source.go), which snapshots
// share; a sandbox started from a snapshot is restored by copyForkLayer
// and restoreFork below, as a fork is (snapshot_restore.go).

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
	forkSource = sourceSteps{op: "fork", state: stepForkSourceState, prepare: stepForkSourcePrepare, sync: stepForkSourceSync,
		checkpoint: stepForkSourceCheckpoint, manifest: stepForkSourceManifest, images: stepForkSourceImages, running: stepForkSourceRunning}
	forkSourceSteps = forkSource.names()
	forkSteps       = []string{stepForkDir, stepForkCopy, stepForkNetwork, stepForkLayer, stepForkState, stepForkRestore,
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

// forkJob is one sandbox restored from a checkpoint: a fork of a call,
// or a sandbox started from a snapshot.
type forkJob struct {
	op       string // "fork", or "create" for a sandbox from a snapshot: errors say it
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
	if err := a.admitForks(ctx, jobs); err != nil {
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
	callDir, srcToken := "", ""
	if admitted > 0 {
		srcToken, err = a.checkpointSource(ctx, src, forkSource,
			func() (string, error) {
				var err error
				callDir, err = a.linkForkImages(src)
				return callDir, err
			},
			func() error {
				// Each fork's copy of the layer is made while the source
				// is stopped and its layer synced; a fork whose copy
				// fails fails alone.
				o := origin{layer: src.layer, tplPath: src.tplPath, envdVersion: src.envdVersion}
				for _, j := range jobs {
					if j.admitted && j.err == nil {
						j.err = a.copyForkLayer(ctx, o, j)
					}
				}
				return nil
			})
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
	if callDir != "" {
		defer func() {
			if err := os.RemoveAll(callDir); err != nil {
				src.log.Error("remove the images of a fork", "err", err)
			}
		}()
	}
	from := restoreSource{images: filepath.Join(callDir, imagesDirName), token: srcToken}

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
			j.err = a.restoreFork(ctx, j, from)
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
		return errdefs.Conflict("sandbox %s is %s, not running: only a running sandbox can be forked or snapshotted", src.id, st)
	case natns == "":
		return errdefs.Conflict("sandbox %s has a guest address of its own (made by an agent before the shared guest address, or with unique guest addresses): it cannot be forked or snapshotted", src.id)
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
		cfg := a.restoredConfig(base, f)
		if err := checkConfig(cfg); err != nil {
			return nil, fmt.Errorf("fork %d (%s): %w", i, fid, err)
		}
		jobs = append(jobs, &forkJob{op: "fork", sb: &sandbox{
			id:     fid,
			rid:    fid,
			dir:    filepath.Join(a.sandboxesDir(), fid),
			log:    a.log.With("sandbox", fid, "fork_of", src.id),
			cfg:    cfg,
			status: statusCreating,
		}})
	}
	return jobs, nil
}

// restoredConfig is the config of a sandbox restored from a checkpoint of
// a sandbox whose config is base (a fork, or a sandbox from a snapshot):
// a copy of base with req's id, timeout (0: the default), access token,
// metadata and auto-pause settings.
func (a *Agent) restoredConfig(base, req *agentpb.SandboxConfig) *agentpb.SandboxConfig {
	cfg := proto.Clone(base).(*agentpb.SandboxConfig)
	cfg.Id = req.GetId()
	cfg.TimeoutSeconds = req.GetTimeoutSeconds()
	if cfg.TimeoutSeconds == 0 {
		cfg.TimeoutSeconds = uint32(a.cfg.DefaultTimeout / time.Second)
	}
	cfg.AccessToken = req.GetAccessToken()
	cfg.Metadata = req.GetMetadata()
	cfg.AutoPause = req.GetAutoPause()
	cfg.AutoPauseFilesystemOnly = req.GetAutoPauseFilesystemOnly()
	return cfg
}

// admitForks admits each fork like a create, in order, and registers the
// admitted ones (status creating, op held by the call); a fork whose ID
// is taken or for which the host has no room fails on its own. Forks
// refused for room get it as a create does (admitOrDemote): pooled
// sandboxes are removed one by one, then the sandboxes paused in memory
// are moved to disk, and the refused forks are admitted afresh after
// each. Only measuring the host fails the call.
func (a *Agent) admitForks(ctx context.Context, jobs []*forkJob) error {
	if err := a.admitForksOnce(jobs); err != nil {
		return err
	}
	demoted := false
	for {
		var short []*forkJob
		for _, j := range jobs {
			if !j.admitted && errors.Is(j.err, errdefs.ErrExhausted) {
				short = append(short, j)
			}
		}
		if len(short) == 0 {
			break
		}
		if !a.evictPooled(ctx) {
			if demoted || !a.hasMemoryTier() || a.demoteAll(ctx) == 0 {
				break
			}
			demoted = true
		}
		for _, j := range short {
			j.err = nil
		}
		if err := a.admitForksOnce(short); err != nil {
			return err
		}
	}
	for _, j := range jobs {
		if !j.admitted && j.err != nil {
			a.prom.observeRefusal("fork", j.err)
		}
	}
	return nil
}

// admitForksOnce is one pass of admitForks over jobs, with the host
// measured once.
func (a *Agent) admitForksOnce(jobs []*forkJob) error {
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
			j.err = fmt.Errorf("fork %s: %w", j.sb.id, err)
			continue
		}
		j.sb.op.Lock() // nobody else can hold it: it was never registered
		a.sandboxes[j.sb.id] = j.sb
		j.admitted = true
	}
	return nil
}

// linkForkImages makes the call's directory, <data>/forks/<source>-<random>,
// holding hard links of the source's checkpoint, so that the source's
// restore may remove its own snapshot while the forks are still restored
// from these.
func (a *Agent) linkForkImages(src *sandbox) (string, error) {
	if err := os.MkdirAll(a.forksDir(), 0o700); err != nil {
		return "", err
	}
	dir := filepath.Join(a.forksDir(), src.id+"-"+nonce())
	if err := linkImages(imagesDir(src), filepath.Join(dir, imagesDirName)); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// nonce is 12 random hex digits, for names of temporary directories.
func nonce() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// forkStep runs the test hook after one of j's steps (in production a
// no-op).
func (a *Agent) forkStep(j *forkJob, name string) error {
	if a.cfg.failAt == nil {
		return nil
	}
	if err := a.cfg.failAt(name); err != nil {
		return fmt.Errorf("%s sandbox %s: %s: %w", j.op, j.sb.id, name, err)
	}
	return nil
}

// wrap wraps an error of j's restore.
func (j *forkJob) wrap(err error) error {
	return fmt.Errorf("%s sandbox %s: %w", j.op, j.sb.id, err)
}

// origin is what a restored sandbox's layer is copied from: a fork
// source's layer (stopped and synced) or a snapshot's copy of one, with
// the template version and envd version it runs on.
type origin struct {
	layer       rootfs.Layer
	tplPath     string
	envdVersion string
}

// restoreSource is what a restored sandbox starts from: the images
// directory and the access token the image's envd holds.
type restoreSource struct {
	images, token string
}

// copyForkLayer makes j's directory, its first state file and its copy
// of o's writable layer. The caller holds j's op and keeps o's layer
// from changing (a fork: the source's op, the source stopped with its
// layer synced; a snapshot: a read hold of the snapshots).
func (a *Agent) copyForkLayer(ctx context.Context, o origin, j *forkJob) error {
	sb := j.sb
	sb.tplPath, sb.envdVersion = o.tplPath, o.envdVersion
	if err := os.Mkdir(sb.dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return errdefs.AlreadyExists("sandbox %s: directory %s exists", sb.id, sb.dir)
		}
		return j.wrap(err)
	}
	j.undo.push(stepForkDir, func(context.Context) error { return os.RemoveAll(sb.dir) })
	// Written before anything outside the directory exists, and kept
	// saying creating until the sandbox runs: a restarted agent removes
	// what the record names.
	if err := a.writeState(sb); err != nil {
		return j.wrap(err)
	}
	if err := a.forkStep(j, stepForkDir); err != nil {
		return err
	}
	start := time.Now()
	layer, err := a.layers.Clone(ctx, o.layer, sb.dir)
	if err != nil {
		return j.wrap(err)
	}
	a.mu.Lock()
	sb.layer = layer
	sb.cfg.DiskBytes = layer.SizeBytes
	a.mu.Unlock()
	j.undo.push(stepForkCopy, func(ctx context.Context) error { return a.layers.Unmount(ctx, sb.layer) })
	if err := a.writeState(sb); err != nil {
		return j.wrap(err)
	}
	sb.log.Debug("writable layer copied", "took", time.Since(start))
	return a.forkStep(j, stepForkCopy)
}

// restoreFork brings j up from a checkpoint: its network, its layer copy
// mounted, the runtime restored under its ID from from.images, envd
// healthy, and in one /init the token the image's envd holds
// (from.token, the source's) replaced by j's, with j's env vars added.
// The caller holds j's op and has checked that the driver checkpoints.
func (a *Agent) restoreFork(ctx context.Context, j *forkJob, from restoreSource) error {
	sb := j.sb
	step := func(name string) error { return a.forkStep(j, name) }
	start := time.Now()
	opts, err := networkOptions(sb.cfg)
	if err != nil {
		return err
	}
	n, err := a.net.Setup(ctx, sb.rid, opts)
	if err != nil {
		return j.wrap(err)
	}
	a.mu.Lock()
	sb.net = n
	a.mu.Unlock()
	j.undo.push(stepForkNetwork, func(ctx context.Context) error { return a.net.Teardown(ctx, sb.net) })
	if err := step(stepForkNetwork); err != nil {
		return err
	}
	if err := a.writeState(sb); err != nil {
		return j.wrap(err)
	}
	if err := a.layers.Remount(ctx, sb.layer); err != nil {
		return j.wrap(err)
	}
	if err := step(stepForkLayer); err != nil {
		return err
	}
	// The logs live on the layer, as at create; the copy's are the
	// source's, and the new sandbox starts its own.
	if err := os.RemoveAll(logDir(sb)); err != nil {
		return j.wrap(err)
	}
	if err := os.Mkdir(logDir(sb), 0o700); err != nil {
		return j.wrap(err)
	}
	if err := a.writeState(sb); err != nil {
		return j.wrap(err)
	}
	if err := step(stepForkState); err != nil {
		return err
	}
	cp := a.driver.(driver.Checkpointer)
	if err := cp.Restore(ctx, driverSpec(sb), from.images); err != nil {
		return j.wrap(err)
	}
	j.undo.push(stepForkRestore, func(ctx context.Context) error { return a.driver.Destroy(ctx, sb.rid) })
	if !sb.pooled { // no control plane knows a pooled sandbox
		a.emit(sb.id, EventCreated)
		j.created = true
	}
	if err := step(stepForkRestore); err != nil {
		return err
	}
	hctx, cancel := context.WithTimeout(ctx, a.cfg.ReadyTimeout)
	err = a.envd.waitHealthy(hctx, sb.net.Addr())
	cancel()
	if err != nil {
		return j.wrap(fmt.Errorf("envd did not answer within %s: %w", a.cfg.ReadyTimeout, err))
	}
	if err := step(stepForkHealth); err != nil {
		return err
	}
	// envd holds the source's token until this /init, which the source's
	// token authenticates and which replaces it with the new sandbox's.
	if err := a.envd.forkInit(ctx, sb.net.Addr(), from.token, sb.cfg, a.cfg.RestoreInitTimeout); err != nil {
		return j.wrap(err)
	}
	if err := step(stepForkInit); err != nil {
		return err
	}
	if sb.pooled {
		return nil // the caller records it pooled (pooledReady)
	}
	sb.startedAt = time.Now()
	sb.proxy = newSandboxProxy(a, sb)
	a.mu.Lock()
	sb.status = statusRunning
	sb.endAt = sb.startedAt.Add(time.Duration(sb.cfg.TimeoutSeconds) * time.Second)
	a.mu.Unlock()
	if err := a.writeState(sb); err != nil {
		a.setStatus(sb, statusCreating)
		return j.wrap(err)
	}
	if err := step(stepForkRunning); err != nil {
		a.setStatus(sb, statusCreating)
		return err
	}
	a.emit(sb.id, EventRunning)
	sb.log.Info("sandbox running, restored from a checkpoint", "took", time.Since(start), "address", sb.net.Addr())
	return nil
}

// unwindFork removes everything of a restore that failed and forgets the
// sandbox. The caller holds its op.
func (a *Agent) unwindFork(ctx context.Context, j *forkJob) {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
	defer cancel()
	if err := j.undo.unwind(bg); err != nil {
		j.sb.log.Error("cleanup after a failed restore left something behind", "err", err)
	}
	a.forget(j.sb)
	if j.created {
		a.emit(j.sb.id, EventStopped)
	}
	j.sb.log.Warn(j.op+" failed", "err", j.err)
}

// removeForkLeftovers removes the images directories of fork calls that a
// previous agent process did not finish. Called by recover, alone.
func (a *Agent) removeForkLeftovers() error {
	if err := os.RemoveAll(a.forksDir()); err != nil {
		return fmt.Errorf("remove images of unfinished forks: %w", err)
	}
	return nil
}
