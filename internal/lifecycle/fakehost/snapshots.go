package fakehost

import (
	"context"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
)

func (f *Agent) CreateSnapshot(ctx context.Context, req *connect.Request[agentpb.CreateSnapshotRequest]) (*connect.Response[agentpb.CreateSnapshotResponse], error) {
	return nil, errdefs.ToConnect(errdefs.Unimplemented("snapshots are not implemented yet"))
}

func (f *Agent) DeleteSnapshot(ctx context.Context, req *connect.Request[agentpb.DeleteSnapshotRequest]) (*connect.Response[agentpb.DeleteSnapshotResponse], error) {
	return connect.NewResponse(&agentpb.DeleteSnapshotResponse{}), nil
}

func (f *Agent) ListSnapshots(ctx context.Context, req *connect.Request[agentpb.ListSnapshotsRequest]) (*connect.Response[agentpb.ListSnapshotsResponse], error) {
	return connect.NewResponse(&agentpb.ListSnapshotsResponse{}), nil
}
