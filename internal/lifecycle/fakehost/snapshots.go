package fakehost

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"nestbox.dev/internal/proto/agentpb"
)

// snapshot is a snapshot the fake keeps: what ListSnapshots shows, and the
// source's config, which a sandbox started from it gets (as the real
// agent's snapshot keeps the sandbox's config).
type snapshot struct {
	info *agentpb.Snapshot
	cfg  *agentpb.SandboxConfig
}

// SnapshotOverhead is what the fake adds to a snapshot's memory for its
// size on disk (the layer copy's blocks).
const SnapshotOverhead = 64 << 20

// FailNextSnapshot makes the next CreateSnapshot fail with err; with gone,
// that failure loses the source sandbox (as a runsc that died
// mid-checkpoint would), else the sandbox runs on, as the agent's contract
// says. No snapshot is kept either way.
func (f *Agent) FailNextSnapshot(err error, gone bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failSnapshot, f.goneAfterSnapshot = err, gone
}

// HoldSnapshots makes CreateSnapshot wait until the returned function is
// called (or its context ends).
func (f *Agent) HoldSnapshots() (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.snapshotGate = ch
	f.mu.Unlock()
	closed := false
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !closed {
			closed = true
			close(ch)
		}
	}
}

// HasSnapshot reports whether the agent keeps snapshot id.
func (f *Agent) HasSnapshot(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.snapshots[id]
	return ok
}

// SnapshotCount is the number of snapshots the agent keeps.
func (f *Agent) SnapshotCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.snapshots)
}

// ForgetSnapshot drops a snapshot behind the control plane's back, as a
// lost disk would.
func (f *Agent) ForgetSnapshot(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.snapshots, id)
}

// CreateSnapshot keeps a snapshot of a running sandbox: not_found for an
// unknown sandbox, failed_precondition for one that is not running,
// already_exists for a snapshot ID in use.
func (f *Agent) CreateSnapshot(ctx context.Context, req *connect.Request[agentpb.CreateSnapshotRequest]) (*connect.Response[agentpb.CreateSnapshotResponse], error) {
	if err := f.reach(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	gate := f.snapshotGate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, connect.NewError(connect.CodeDeadlineExceeded, ctx.Err())
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id, sid := req.Msg.GetSandboxId(), req.Msg.GetSnapshotId()
	sb, ok := f.sandboxes[id]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such sandbox"))
	}
	if err := f.failSnapshot; err != nil {
		f.failSnapshot = nil
		if f.goneAfterSnapshot {
			delete(f.sandboxes, id)
		}
		return nil, err
	}
	if sb.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("sandbox is not running"))
	}
	if sid == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("no snapshot id"))
	}
	if _, taken := f.snapshots[sid]; taken {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("snapshot %s exists", sid))
	}
	cfg := sb.GetConfig()
	info := &agentpb.Snapshot{
		Id:          sid,
		SandboxId:   id,
		Template:    cfg.GetTemplate(),
		Vcpus:       cfg.GetVcpus(),
		MemoryMb:    cfg.GetMemoryMb(),
		DiskBytes:   cfg.GetDiskBytes(),
		SizeBytes:   int64(cfg.GetMemoryMb())<<20 + SnapshotOverhead,
		CreatedAt:   timestamppb.Now(),
		EnvdVersion: sb.GetEnvdVersion(),
	}
	if f.snapshots == nil {
		f.snapshots = map[string]*snapshot{}
	}
	f.snapshots[sid] = &snapshot{info: info, cfg: proto.CloneOf(cfg)}
	return connect.NewResponse(&agentpb.CreateSnapshotResponse{Snapshot: info, Sandbox: sb}), nil
}

// DeleteSnapshot drops a snapshot; an unknown one is no error. Sandboxes
// started from it are not touched.
func (f *Agent) DeleteSnapshot(ctx context.Context, req *connect.Request[agentpb.DeleteSnapshotRequest]) (*connect.Response[agentpb.DeleteSnapshotResponse], error) {
	if err := f.reach(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletedSnapshots = append(f.deletedSnapshots, req.Msg.GetId())
	delete(f.snapshots, req.Msg.GetId())
	return connect.NewResponse(&agentpb.DeleteSnapshotResponse{}), nil
}

// DeletedSnapshots returns the IDs DeleteSnapshot was called with, in
// order.
func (f *Agent) DeletedSnapshots() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.deletedSnapshots...)
}

// ListSnapshots lists the snapshots the agent keeps.
func (f *Agent) ListSnapshots(ctx context.Context, req *connect.Request[agentpb.ListSnapshotsRequest]) (*connect.Response[agentpb.ListSnapshotsResponse], error) {
	if err := f.reach(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &agentpb.ListSnapshotsResponse{}
	for _, sn := range f.snapshots {
		out.Snapshots = append(out.Snapshots, sn.info)
	}
	return connect.NewResponse(out), nil
}

// fromSnapshot fills cfg, a create that names a snapshot, with the
// snapshot's template, sizes and egress rules, as the agent does: an
// unknown snapshot is not_found, a template that differs
// invalid_argument. f.mu must be held.
func (f *Agent) fromSnapshot(cfg *agentpb.SandboxConfig) error {
	sn, ok := f.snapshots[cfg.GetSnapshotId()]
	if !ok {
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("no snapshot %s", cfg.GetSnapshotId()))
	}
	if cfg.GetTemplate() != "" && cfg.GetTemplate() != sn.cfg.GetTemplate() {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("template %q is not the snapshot's %q", cfg.GetTemplate(), sn.cfg.GetTemplate()))
	}
	cfg.Template, cfg.Vcpus, cfg.MemoryMb, cfg.DiskBytes = sn.cfg.GetTemplate(), sn.cfg.GetVcpus(), sn.cfg.GetMemoryMb(), sn.cfg.GetDiskBytes()
	cfg.Internet, cfg.AllowOut, cfg.DenyOut = sn.cfg.GetInternet(), sn.cfg.GetAllowOut(), sn.cfg.GetDenyOut()
	return nil
}

// SetSnapshotPools keeps the pools, refusing a snapshot the fake does not
// keep as the agent does (not_found).
func (f *Agent) SetSnapshotPools(ctx context.Context, req *connect.Request[agentpb.SetSnapshotPoolsRequest]) (*connect.Response[agentpb.SetSnapshotPoolsResponse], error) {
	if err := f.reach(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	pools := map[string]uint32{}
	for _, p := range req.Msg.GetPools() {
		if _, ok := f.snapshots[p.GetSnapshotId()]; !ok && p.GetSize() > 0 {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("snapshot %s not found", p.GetSnapshotId()))
		}
		if p.GetSize() > 0 {
			pools[p.GetSnapshotId()] = p.GetSize()
		}
	}
	f.snapshotPools = pools
	f.poolSets++
	return connect.NewResponse(&agentpb.SetSnapshotPoolsResponse{}), nil
}

// SnapshotPools returns the pools of the last SetSnapshotPools, by
// snapshot ID, and how many calls succeeded.
func (f *Agent) SnapshotPools() (map[string]uint32, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]uint32, len(f.snapshotPools))
	for k, v := range f.snapshotPools {
		out[k] = v
	}
	return out, f.poolSets
}
