package agent

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/agentpb/agentpbconnect"
)

// service is the Connect API of the agent. Each method translates between
// the wire and the agent's own methods; errors get their Connect code from
// errdefs.
type service struct {
	a *Agent
}

var _ agentpbconnect.AgentHandler = service{}

func (s service) CreateSandbox(ctx context.Context, req *connect.Request[agentpb.CreateSandboxRequest]) (*connect.Response[agentpb.CreateSandboxResponse], error) {
	sb, err := s.a.create(ctx, req.Msg.GetConfig())
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(&agentpb.CreateSandboxResponse{Sandbox: sb}), nil
}

func (s service) DestroySandbox(ctx context.Context, req *connect.Request[agentpb.DestroySandboxRequest]) (*connect.Response[agentpb.DestroySandboxResponse], error) {
	if err := s.a.destroy(ctx, req.Msg.GetId()); err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(&agentpb.DestroySandboxResponse{}), nil
}

func (s service) GetSandbox(ctx context.Context, req *connect.Request[agentpb.GetSandboxRequest]) (*connect.Response[agentpb.GetSandboxResponse], error) {
	sb, err := s.a.get(req.Msg.GetId())
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(&agentpb.GetSandboxResponse{Sandbox: s.a.toProto(sb)}), nil
}

func (s service) ListSandboxes(ctx context.Context, req *connect.Request[agentpb.ListSandboxesRequest]) (*connect.Response[agentpb.ListSandboxesResponse], error) {
	return connect.NewResponse(&agentpb.ListSandboxesResponse{Sandboxes: s.a.list()}), nil
}

func (s service) SetTimeout(ctx context.Context, req *connect.Request[agentpb.SetTimeoutRequest]) (*connect.Response[agentpb.SetTimeoutResponse], error) {
	endAt, err := s.a.setTimeout(ctx, req.Msg.GetId(), time.Duration(req.Msg.GetTimeoutSeconds())*time.Second)
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(&agentpb.SetTimeoutResponse{EndAt: timestamppb.New(endAt)}), nil
}

func (s service) GetSandboxMetrics(ctx context.Context, req *connect.Request[agentpb.GetSandboxMetricsRequest]) (*connect.Response[agentpb.GetSandboxMetricsResponse], error) {
	m, err := s.a.metrics(ctx, req.Msg.GetId())
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	resp := &agentpb.GetSandboxMetricsResponse{Metrics: m}
	if req.Msg.Start != nil || req.Msg.End != nil {
		var start, end time.Time
		if req.Msg.Start != nil {
			start = req.Msg.Start.AsTime()
		}
		if req.Msg.End != nil {
			end = req.Msg.End.AsTime()
		}
		if resp.History, err = s.a.history(req.Msg.GetId(), start, end); err != nil {
			return nil, errdefs.ToConnect(err)
		}
	}
	return connect.NewResponse(resp), nil
}

func (s service) Ping(ctx context.Context, req *connect.Request[agentpb.PingRequest]) (*connect.Response[agentpb.PingResponse], error) {
	resp, err := s.a.ping(ctx)
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(resp), nil
}

func (s service) ListTemplates(ctx context.Context, req *connect.Request[agentpb.ListTemplatesRequest]) (*connect.Response[agentpb.ListTemplatesResponse], error) {
	return connect.NewResponse(&agentpb.ListTemplatesResponse{Templates: s.a.listTemplates()}), nil
}

func (s service) PauseSandbox(ctx context.Context, req *connect.Request[agentpb.PauseSandboxRequest]) (*connect.Response[agentpb.PauseSandboxResponse], error) {
	sb, err := s.a.pause(ctx, req.Msg.GetId(), req.Msg.GetFilesystemOnly())
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(&agentpb.PauseSandboxResponse{Sandbox: sb}), nil
}

func (s service) ResumeSandbox(ctx context.Context, req *connect.Request[agentpb.ResumeSandboxRequest]) (*connect.Response[agentpb.ResumeSandboxResponse], error) {
	sb, err := s.a.resume(ctx, req.Msg)
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(&agentpb.ResumeSandboxResponse{Sandbox: sb}), nil
}

func (s service) ForkSandbox(ctx context.Context, req *connect.Request[agentpb.ForkSandboxRequest]) (*connect.Response[agentpb.ForkSandboxResponse], error) {
	resp, err := s.a.fork(ctx, req.Msg)
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(resp), nil
}

func (s service) CreateSnapshot(ctx context.Context, req *connect.Request[agentpb.CreateSnapshotRequest]) (*connect.Response[agentpb.CreateSnapshotResponse], error) {
	resp, err := s.a.createSnapshot(ctx, req.Msg)
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(resp), nil
}

func (s service) DeleteSnapshot(ctx context.Context, req *connect.Request[agentpb.DeleteSnapshotRequest]) (*connect.Response[agentpb.DeleteSnapshotResponse], error) {
	if err := s.a.deleteSnapshot(req.Msg.GetId()); err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(&agentpb.DeleteSnapshotResponse{}), nil
}

func (s service) ListSnapshots(ctx context.Context, req *connect.Request[agentpb.ListSnapshotsRequest]) (*connect.Response[agentpb.ListSnapshotsResponse], error) {
	snaps, err := s.a.listSnapshots()
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(&agentpb.ListSnapshotsResponse{Snapshots: snaps}), nil
}

func (s service) SetSnapshotPools(ctx context.Context, req *connect.Request[agentpb.SetSnapshotPoolsRequest]) (*connect.Response[agentpb.SetSnapshotPoolsResponse], error) {
	if err := s.a.setSnapshotPools(req.Msg); err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(&agentpb.SetSnapshotPoolsResponse{}), nil
}
