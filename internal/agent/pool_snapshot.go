package agent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
)

// Warm pools of snapshots: the pools of templates made from snapshots
// (a control plane's, per team; the agent knows only the snapshot). A
// pooled sandbox of snapshot S is restored from S as a create from it is,
// under a pool runtime name, with a pool token, and waits in status
// pooled; a create from S claims it as a create of a template claims a
// pooled sandbox of the template (claimKey): one /init gives it the
// capsule's token and env vars. The sizes are set by SetSnapshotPools
// and kept in snapshotPoolsFile, so a restarted agent keeps its pools
// (and adopts their sandboxes) before any control plane calls again. A
// deleted snapshot's pool goes with it.

// snapshotPoolsFile, in the data directory, keeps the sizes of the pools
// of snapshots.
const snapshotPoolsFile = "snapshot-pools.json"

// snapshotPools is the file's content.
type snapshotPools struct {
	Pools map[string]int `json:"pools"`
}

// loadSnapshotPools reads the pools of snapshots a previous agent kept; a
// missing file is no pools, an unreadable one is logged and ignored (the
// control plane sets them again).
func (a *Agent) loadSnapshotPools() {
	b, err := os.ReadFile(filepath.Join(a.cfg.DataDir, snapshotPoolsFile))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var f snapshotPools
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err != nil {
		a.log.Error("warm pools of snapshots: unreadable; none kept until a control plane sets them", "err", err)
		return
	}
	a.pools.mu.Lock()
	a.pools.snapshots = f.Pools
	a.pools.mu.Unlock()
}

// setSnapshotPools validates and replaces the pools of snapshots, then
// asks the fill loop to act on them.
func (a *Agent) setSnapshotPools(req *agentpb.SetSnapshotPoolsRequest) error {
	want := map[string]int{}
	for _, p := range req.GetPools() {
		if p.GetSize() > MaxPoolSize {
			return errdefs.Invalid("pool of snapshot %s: at most %d sandboxes", p.GetSnapshotId(), MaxPoolSize)
		}
		if _, dup := want[p.GetSnapshotId()]; dup {
			return errdefs.Invalid("pool of snapshot %s is given twice", p.GetSnapshotId())
		}
		if p.GetSize() == 0 {
			continue
		}
		if _, err := a.lookupSnapshot(p.GetSnapshotId()); err != nil {
			return fmt.Errorf("pool of snapshot %s: %w", p.GetSnapshotId(), err)
		}
		want[p.GetSnapshotId()] = int(p.GetSize())
	}
	a.pools.mu.Lock()
	defer a.pools.mu.Unlock()
	if maps.Equal(want, a.pools.snapshots) {
		return nil
	}
	if err := a.writeSnapshotPools(want); err != nil {
		return err
	}
	a.pools.snapshots = want
	a.kickPools()
	a.log.Info("warm pools of snapshots set", "pools", want)
	return nil
}

// dropSnapshotPool forgets the pool of a deleted snapshot; its pooled
// sandboxes are removed by the next pass of the fill loop.
func (a *Agent) dropSnapshotPool(id string) {
	a.pools.mu.Lock()
	defer a.pools.mu.Unlock()
	if _, ok := a.pools.snapshots[id]; !ok {
		return
	}
	want := maps.Clone(a.pools.snapshots)
	delete(want, id)
	if err := a.writeSnapshotPools(want); err != nil {
		a.log.Error("warm pools of snapshots: forget a deleted snapshot's pool", "snapshot", id, "err", err)
	}
	a.pools.snapshots = want
	a.kickPools()
}

// writeSnapshotPools writes the file atomically. Call it with pools.mu
// held.
func (a *Agent) writeSnapshotPools(want map[string]int) error {
	b, err := json.Marshal(snapshotPools{Pools: want})
	if err != nil {
		return err
	}
	name := filepath.Join(a.cfg.DataDir, snapshotPoolsFile)
	if err := writeSynced(name+".tmp", b); err != nil {
		return fmt.Errorf("keep the warm pools of snapshots: %w", err)
	}
	if err := os.Rename(name+".tmp", name); err != nil {
		return fmt.Errorf("keep the warm pools of snapshots: %w", err)
	}
	return nil
}

// snapshotSpecs are the pools of snapshots as PoolSpecs, sorted.
func (p *pools) snapshotSpecs() []PoolSpec {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PoolSpec, 0, len(p.snapshots))
	for _, id := range slices.Sorted(maps.Keys(p.snapshots)) {
		out = append(out, PoolSpec{Snapshot: id, Size: p.snapshots[id]})
	}
	return out
}

// hasSnapshotPool reports whether snapshot id has a pool.
func (p *pools) hasSnapshotPool(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snapshots[id] > 0
}

// snapshotPoolKey is the key and template version of the pooled
// sandboxes of snapshot id, from its metadata.
func (a *Agent) snapshotPoolKey(id string) (poolKey, string, error) {
	m, err := a.lookupSnapshot(id)
	if err != nil {
		return poolKey{}, "", err
	}
	cfg, err := m.config()
	if err != nil {
		return poolKey{}, "", errdefs.DataLoss("%v", err)
	}
	return poolKey{template: cfg.Template, vcpus: cfg.Vcpus, memoryMB: cfg.MemoryMb, diskBytes: m.DiskBytes, snapshot: id}, m.Template, nil
}

// fillFromSnapshot restores one pooled sandbox of snapshot id.
func (a *Agent) fillFromSnapshot(ctx context.Context, id string) error {
	_, err := a.createFromSnapshot(ctx, &agentpb.SandboxConfig{Id: newPoolID(), SnapshotId: id, AccessToken: rand.Text()}, true)
	return err
}
