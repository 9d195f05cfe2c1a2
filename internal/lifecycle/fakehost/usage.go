package fakehost

import (
	"context"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"nestbox.dev/internal/proto/agentpb"
)

// ListSandboxMetrics answers, as the real agent does, one sample per
// running sandbox: the newest added with AddSample, or one holding only
// the sandbox's limits (taken now) when none was added.
func (f *Agent) ListSandboxMetrics(ctx context.Context, req *connect.Request[agentpb.ListSandboxMetricsRequest]) (*connect.Response[agentpb.ListSandboxMetricsResponse], error) {
	if err := f.reach(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &agentpb.ListSandboxMetricsResponse{}
	for id, sb := range f.sandboxes {
		if sb.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
			continue
		}
		var m *agentpb.SandboxMetrics
		if h := f.samples[id]; len(h) > 0 {
			m = h[len(h)-1]
		} else {
			cfg := sb.GetConfig()
			m = &agentpb.SandboxMetrics{
				At:               timestamppb.Now(),
				CpuCount:         max(cfg.GetVcpus(), 1),
				MemoryTotalBytes: uint64(cfg.GetMemoryMb()) << 20,
				DiskTotalBytes:   uint64(max(cfg.GetDiskBytes(), 0)),
			}
		}
		out.Samples = append(out.Samples, &agentpb.SandboxSample{Id: id, Metrics: m})
	}
	return connect.NewResponse(out), nil
}
