package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/rootfs"
)

// The steps of a create from a snapshot beyond a fork's (forkSteps, which
// it runs too: a sandbox from a snapshot is restored as a fork is).
const (
	stepSnapshotLink   = "snapshot-link"   // the snapshot's images are linked into the sandbox's directory
	stepSnapshotVerify = "snapshot-verify" // they match the snapshot's manifest
)

// snapshotRestoreSteps are the steps of a create from a snapshot, in order.
var snapshotRestoreSteps = []string{stepForkDir, stepForkCopy, stepSnapshotLink, stepSnapshotVerify, stepForkNetwork,
	stepForkLayer, stepForkState, stepForkRestore, stepForkHealth, stepForkInit, stepForkRunning}

// createFromSnapshot starts a sandbox from snapshot req.snapshot_id
// (CreateSandbox with a snapshot_id): its own directory, copy of the
// snapshot's layer, links of its images, network, runtime and token, as a
// fork is restored. The images are checked against the snapshot's
// manifest before anything runs: a damaged snapshot is data_loss, with
// nothing left. On any error nothing of the sandbox is left; the snapshot
// stays as it was. A create claims a pooled sandbox of the snapshot when
// its pool holds one ready (pool_snapshot.go); pooled makes one for the
// pool instead (req.id a pool runtime name), admitted within the pools'
// budget, announced by no event and left in status pooled.
func (a *Agent) createFromSnapshot(ctx context.Context, req *agentpb.SandboxConfig, pooled bool) (_ *agentpb.Sandbox, err error) {
	snapID := req.GetSnapshotId()
	if !capsulespec.ValidID(req.GetId()) {
		return nil, errdefs.Invalid("sandbox id %q must be %d characters [a-z0-9]", req.GetId(), capsulespec.IDLength)
	}
	meta, err := a.lookupSnapshot(snapID)
	if err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", req.GetId(), err)
	}
	if _, ok := a.driver.(driver.Checkpointer); !ok {
		return nil, fmt.Errorf("create sandbox %s: driver %s cannot restore a snapshot: %w", req.GetId(), a.driver.Name(), errdefs.ErrUnimplemented)
	}
	if a.cfg.UniqueGuestAddresses {
		// The image's netstack has the shared guest address.
		return nil, errdefs.Conflict("create sandbox %s: this agent gives every guest its own address: it cannot restore snapshots", req.GetId())
	}
	cfg, err := a.snapshotConfig(meta, req)
	if err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", req.GetId(), err)
	}
	if !pooled && a.pools.hasSnapshotPool(snapID) {
		opts, err := networkOptions(cfg)
		if err != nil {
			return nil, err
		}
		key := keyOf(cfg)
		if out, ok, err := a.claimKey(ctx, cfg, key, meta.Template, opts); ok {
			return out, err
		}
	}
	j := &forkJob{op: "create", sb: &sandbox{
		id:     cfg.Id,
		rid:    cfg.Id,
		dir:    filepath.Join(a.sandboxesDir(), cfg.Id),
		log:    a.log.With("sandbox", cfg.Id, "snapshot", snapID),
		cfg:    cfg,
		status: statusCreating,
	}}
	if pooled {
		j.sb.pooled = true
		j.sb.log = a.log.With("pooled_sandbox", cfg.Id, "snapshot", snapID)
		if err := a.admitPooledJob(j); err != nil {
			return nil, err
		}
	} else if err := a.admitForks(ctx, []*forkJob{j}); err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", cfg.Id, err)
	}
	if !j.admitted {
		return nil, j.err
	}
	defer func() {
		if err != nil {
			j.err = err
			a.unwindFork(ctx, j)
		}
		j.sb.op.Unlock()
	}()
	start := time.Now()
	from, err := a.copySnapshot(ctx, snapID, meta, j)
	if err != nil {
		return nil, err
	}
	if err := verifyManifest(filepath.Join(j.sb.dir, restoreDirName), meta.SourceID, "snapshot "+snapID); err != nil {
		return nil, j.wrap(err)
	}
	if err := verifyLayer(meta, j.sb.layer.Image); err != nil {
		return nil, j.wrap(err)
	}
	if err := a.forkStep(j, stepSnapshotVerify); err != nil {
		return nil, err
	}
	if err := a.restoreFork(ctx, j, from); err != nil {
		return nil, err
	}
	// The runtime read the images whole before its restore returned.
	if err := os.RemoveAll(filepath.Join(j.sb.dir, restoreDirName)); err != nil {
		j.sb.log.Warn("remove the links of the snapshot's images", "err", err)
	}
	if pooled {
		return a.pooledReady(j.sb, start)
	}
	j.sb.log.Info("sandbox started from a snapshot", "took", time.Since(start))
	return a.toProto(j.sb), nil
}

// admitPooledJob admits and registers j, a pooled sandbox of a snapshot,
// as a fork is (status creating, op held), within the pools' budget.
func (a *Agent) admitPooledJob(j *forkJob) error {
	capacity, err := a.measure(true)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.sandboxes[j.sb.id]; ok {
		return errdefs.AlreadyExists("sandbox %s exists", j.sb.id)
	}
	if err := a.admitPooled(capacity, j.sb.cfg); err != nil {
		a.prom.observeRefusal("pool", err)
		return err
	}
	j.sb.op.Lock() // nobody else can hold it: it was never registered
	a.sandboxes[j.sb.id] = j.sb
	j.admitted = true
	return nil
}

// verifyLayer checks the sandbox's copy of the layer of snapshot m, at
// image, against the checksum the snapshot recorded: a difference is
// errdefs.ErrDataLoss (the snapshot's copy was damaged on disk, or the
// copy of it was cut short).
func verifyLayer(m snapshotMeta, image string) error {
	if m.LayerCRC32C == "" {
		return nil
	}
	got, err := rootfs.Checksum(image)
	if err != nil {
		return errdefs.DataLoss("snapshot %s: layer: %v", m.ID, err)
	}
	if got != m.LayerCRC32C {
		return errdefs.DataLoss("snapshot %s: the layer copy has checksum %s, the snapshot recorded %s", m.ID, got, m.LayerCRC32C)
	}
	return nil
}

// snapshotConfig is the config of a sandbox started from the snapshot of
// m: the source's template, sizes, egress rules and defaults, with the
// request's id, timeout, access token, metadata and auto-pause settings,
// its env vars added to the source's, and its default user and workdir
// when it names them. A template given that is not the snapshot's is
// errdefs.ErrInvalid.
func (a *Agent) snapshotConfig(m snapshotMeta, req *agentpb.SandboxConfig) (*agentpb.SandboxConfig, error) {
	src, err := m.config()
	if err != nil {
		return nil, errdefs.DataLoss("%v", err)
	}
	if req.GetTemplate() != "" && req.GetTemplate() != src.Template {
		return nil, errdefs.Invalid("snapshot %s is of template %q, not %q", m.ID, src.Template, req.GetTemplate())
	}
	cfg := a.restoredConfig(src, req)
	cfg.SnapshotId = m.ID
	cfg.DiskBytes = m.DiskBytes
	if len(req.GetEnvVars()) > 0 {
		env := maps.Clone(cfg.EnvVars)
		if env == nil {
			env = map[string]string{}
		}
		maps.Copy(env, req.GetEnvVars())
		cfg.EnvVars = env
	}
	if req.GetDefaultUser() != "" {
		cfg.DefaultUser = req.GetDefaultUser()
	}
	if req.GetDefaultWorkdir() != "" {
		cfg.DefaultWorkdir = req.GetDefaultWorkdir()
	}
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// copySnapshot makes j's directory, its copy of snapshot id's layer and
// the links of the snapshot's images and manifest in j's directory,
// holding snapMu to read: a delete waits for this copy and no longer.
// The caller holds j's op.
func (a *Agent) copySnapshot(ctx context.Context, id string, m snapshotMeta, j *forkJob) (restoreSource, error) {
	a.snapMu.RLock()
	defer a.snapMu.RUnlock()
	dir := a.snapshotPath(id)
	// A delete may have come since the metadata was read.
	if _, err := os.Stat(filepath.Join(dir, snapshotMetaName)); err != nil {
		return restoreSource{}, errdefs.NotFound("snapshot %s not found", id)
	}
	o := m.origin(dir)
	if _, err := os.Stat(o.layer.Image); errors.Is(err, os.ErrNotExist) {
		return restoreSource{}, errdefs.DataLoss("snapshot %s: layer copy missing", id)
	}
	if err := a.copyForkLayer(ctx, o, j); err != nil {
		return restoreSource{}, err
	}
	links := filepath.Join(j.sb.dir, restoreDirName)
	if err := linkImages(filepath.Join(dir, imagesDirName), filepath.Join(links, imagesDirName)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return restoreSource{}, j.wrap(errdefs.DataLoss("snapshot %s: images missing", id))
		}
		return restoreSource{}, j.wrap(err)
	}
	if err := os.Link(filepath.Join(dir, manifestFileName), filepath.Join(links, manifestFileName)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return restoreSource{}, j.wrap(errdefs.DataLoss("snapshot %s: manifest missing", id))
		}
		return restoreSource{}, j.wrap(err)
	}
	if err := a.forkStep(j, stepSnapshotLink); err != nil {
		return restoreSource{}, err
	}
	cfg, err := m.config()
	if err != nil {
		return restoreSource{}, j.wrap(errdefs.DataLoss("%v", err))
	}
	return restoreSource{images: filepath.Join(links, imagesDirName), token: cfg.AccessToken}, nil
}
