package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/rootfs"
)

// The steps of a CreateSnapshot, in order; failAt hooks run after each.
// The source's are those of a fork's source (checkpointSource); the copy
// of the layer is made while the source is stopped.
const (
	stepSnapshotState      = "snapshot-state"      // the source's state file says pausing
	stepSnapshotPrepare    = "snapshot-prepare"    // envd flushed and is ready to freeze
	stepSnapshotSync       = "snapshot-sync"       // the layer is on the host's disk
	stepSnapshotCheckpoint = "snapshot-checkpoint" // checkpointed: the source's runtime is gone
	stepSnapshotManifest   = "snapshot-manifest"   // the checksums are recorded
	stepSnapshotImages     = "snapshot-images"     // the images are linked into the temporary directory
	stepSnapshotCopy       = "snapshot-copy"       // the layer is copied there
	stepSnapshotRunning    = "snapshot-running"    // the source runs again
	stepSnapshotMeta       = "snapshot-meta"       // the metadata is written
	stepSnapshotCommit     = "snapshot-commit"     // the directory is renamed into place
)

var (
	snapshotSource = sourceSteps{op: "snapshot", state: stepSnapshotState, prepare: stepSnapshotPrepare, sync: stepSnapshotSync,
		checkpoint: stepSnapshotCheckpoint, manifest: stepSnapshotManifest, images: stepSnapshotImages, running: stepSnapshotRunning}
	snapshotSteps = []string{stepSnapshotState, stepSnapshotPrepare, stepSnapshotSync, stepSnapshotCheckpoint, stepSnapshotManifest,
		stepSnapshotImages, stepSnapshotCopy, stepSnapshotRunning, stepSnapshotMeta, stepSnapshotCommit}
)

// createSnapshot checkpoints a running sandbox into snapshot
// req.snapshot_id (CreateSnapshot; see proto/agent/agent.proto for the
// contract and snapshots.go for the files). On error no snapshot of that
// ID is left, and the source runs again or is gone (reported crashed).
func (a *Agent) createSnapshot(ctx context.Context, req *agentpb.CreateSnapshotRequest) (_ *agentpb.CreateSnapshotResponse, err error) {
	id := req.GetSnapshotId()
	if !capsulespec.ValidID(id) {
		return nil, errdefs.Invalid("snapshot id %q must be %d characters [a-z0-9]", id, capsulespec.IDLength)
	}
	src := a.lookup(req.GetSandboxId())
	if src == nil {
		return nil, errdefs.NotFound("sandbox %s not found", req.GetSandboxId())
	}
	if err := a.forkable(src); err != nil {
		return nil, err
	}
	if err := a.reserveSnapshot(id, src); err != nil {
		return nil, fmt.Errorf("snapshot sandbox %s: %w", src.id, err)
	}
	defer func() {
		a.mu.Lock()
		delete(a.snapPending, id)
		a.mu.Unlock()
	}()
	// As a fork: not tied to the caller, and the source must run again
	// whatever happens.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pauseTimeout)
	defer cancel()
	times := newStepTimes()
	step := a.stepHook(src, "snapshot", times)
	a.mu.Lock()
	meta := snapshotMeta{Version: snapshotMetaVersion, ID: id, SourceID: src.id, Driver: a.driver.Name(),
		Template: src.tplPath, EnvdVersion: src.envdVersion}
	cfg := src.cfg
	a.mu.Unlock()
	if meta.Config, err = protojson.Marshal(cfg); err != nil {
		return nil, fmt.Errorf("snapshot sandbox %s: %w", src.id, err)
	}

	// tmp is the directory being made; final the snapshot once renamed.
	tmp, final := "", ""
	defer func() {
		if err == nil {
			return
		}
		for _, d := range []string{tmp, final} {
			if d != "" {
				if rerr := os.RemoveAll(d); rerr != nil {
					src.log.Error("remove a failed snapshot", "dir", d, "err", rerr)
				}
			}
		}
	}()
	if _, err := a.checkpointSource(ctx, src, snapshotSource,
		func() (string, error) {
			dir, err := a.keepSnapshotImages(src, id)
			tmp = dir
			return dir, err
		},
		func() error {
			layer, err := a.layers.Clone(ctx, src.layer, tmp)
			if err != nil {
				return fmt.Errorf("snapshot sandbox %s: %w", src.id, err)
			}
			meta.LayerImage, meta.DiskBytes = filepath.Base(layer.Image), layer.SizeBytes
			return step(stepSnapshotCopy)
		}); err != nil {
		return nil, err
	}

	// After the source runs again: the copy is the snapshot's alone.
	if meta.LayerCRC32C, err = rootfs.Checksum(filepath.Join(tmp, meta.LayerImage)); err != nil {
		return nil, fmt.Errorf("snapshot sandbox %s: %w", src.id, err)
	}
	meta.CreatedAt = time.Now().UTC()
	if err := writeSnapshotMeta(tmp, meta); err != nil {
		return nil, fmt.Errorf("snapshot sandbox %s: %w", src.id, err)
	}
	if err := step(stepSnapshotMeta); err != nil {
		return nil, err
	}
	a.snapMu.Lock()
	err = os.Rename(tmp, a.snapshotPath(id))
	a.snapMu.Unlock()
	if err != nil {
		if errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY) {
			return nil, errdefs.AlreadyExists("snapshot %s exists", id)
		}
		return nil, fmt.Errorf("snapshot sandbox %s: %w", src.id, err)
	}
	tmp, final = "", a.snapshotPath(id)
	if err := syncDir(a.snapshotsDir()); err != nil {
		return nil, fmt.Errorf("snapshot sandbox %s: %w", src.id, err)
	}
	if err := step(stepSnapshotCommit); err != nil {
		return nil, err
	}
	snap, err := a.describeSnapshot(id)
	if err != nil {
		return nil, fmt.Errorf("snapshot sandbox %s: %w", src.id, err)
	}
	src.log.Info("snapshot taken", "snapshot", id, "took", times.total(), "steps", times.String(), "size_bytes", snap.SizeBytes)
	return &agentpb.CreateSnapshotResponse{Snapshot: snap, Sandbox: a.toProto(src)}, nil
}

// reserveSnapshot claims snapshot id for a create: already_exists if it
// exists or is being made, resource_exhausted if the host keeps its
// maximum of snapshots or has no disk for this one (the source's layer
// as it holds now, plus its memory limit for the memory image, above the
// disk reserve). The caller removes id from snapPending when done.
func (a *Agent) reserveSnapshot(id string, src *sandbox) error {
	c, err := a.measure(false)
	if err != nil {
		return err
	}
	ids, err := a.snapshotIDs()
	if err != nil {
		return err
	}
	var need uint64
	var st syscall.Stat_t
	if syscall.Stat(src.layer.Image, &st) == nil {
		need = uint64(st.Blocks) * 512
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	need += uint64(src.cfg.MemoryMb) << 20
	if _, err := os.Stat(a.snapshotPath(id)); err == nil || a.snapPending[id] {
		return errdefs.AlreadyExists("snapshot %s exists", id)
	}
	if limit := a.cfg.MaxSnapshots; limit > 0 && len(ids)+len(a.snapPending) >= limit {
		return fmt.Errorf("this host keeps its maximum of %d snapshots: %w", limit, errdefs.ErrExhausted)
	}
	if c.diskAvail < c.diskReserve || c.diskAvail-c.diskReserve < need {
		return fmt.Errorf("this host has no disk for a snapshot of up to %d MiB: %d MiB free, %d MiB kept in reserve: %w",
			need>>20, c.diskAvail>>20, c.diskReserve>>20, errdefs.ErrExhausted)
	}
	a.snapPending[id] = true
	return nil
}

// keepSnapshotImages makes snapshot id's temporary directory with hard
// links of src's checkpoint and its manifest. On error it removes what it
// made and returns "".
func (a *Agent) keepSnapshotImages(src *sandbox, id string) (string, error) {
	if err := os.MkdirAll(a.snapshotsDir(), 0o700); err != nil {
		return "", err
	}
	dir := filepath.Join(a.snapshotsDir(), ".tmp-"+id+"-"+nonce())
	if err := linkImages(imagesDir(src), filepath.Join(dir, imagesDirName)); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if err := os.Link(filepath.Join(snapshotDir(src), manifestFileName), filepath.Join(dir, manifestFileName)); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("link snapshot manifest: %w", err)
	}
	return dir, nil
}

// writeSnapshotMeta writes dir's snapshot.json (0600), fsynced with the
// directory: a snapshot renamed into place is on disk whole.
func writeSnapshotMeta(dir string, m snapshotMeta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(dir, snapshotMetaName), b); err != nil {
		return fmt.Errorf("write snapshot metadata: %w", err)
	}
	// The layer copy was written without fsync (CopySparse).
	if err := syncDir(filepath.Join(dir, m.LayerImage)); err != nil {
		return fmt.Errorf("write snapshot metadata: %w", err)
	}
	return syncDir(dir)
}
