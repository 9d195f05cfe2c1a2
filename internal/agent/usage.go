package agent

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"nestbox.dev/internal/proto/agentpb"
)

// ListSandboxMetrics is the control plane's usage sampler's one call per
// host and interval: the newest periodic sample of every running sandbox,
// read from the rings sampleAll fills. No sandbox is asked, so the answer
// costs the same with one sandbox as with a thousand, and a reading is
// never taken out of turn (which would shorten the window of the next
// periodic CPU %).
func (s service) ListSandboxMetrics(ctx context.Context, req *connect.Request[agentpb.ListSandboxMetricsRequest]) (*connect.Response[agentpb.ListSandboxMetricsResponse], error) {
	return connect.NewResponse(&agentpb.ListSandboxMetricsResponse{Samples: s.a.latestSamples(time.Now())}), nil
}

// latestSamples returns a sample for each running sandbox: its ring's
// newest, or, for a sandbox not sampled yet, one that holds only its limits
// (taken at now), so that the sampler still sees it run.
func (a *Agent) latestSamples(now time.Time) []*agentpb.SandboxSample {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*agentpb.SandboxSample, 0, len(a.sandboxes))
	for _, sb := range a.sandboxes {
		if sb.status != statusRunning {
			continue
		}
		m := sb.samples.newest()
		if m == nil {
			m = &agentpb.SandboxMetrics{
				At:               timestamppb.New(now),
				CpuCount:         max(sb.cfg.GetVcpus(), 1),
				MemoryTotalBytes: uint64(sb.cfg.GetMemoryMb()) << 20,
				DiskTotalBytes:   uint64(max(sb.cfg.GetDiskBytes(), 0)),
			}
		}
		out = append(out, &agentpb.SandboxSample{Id: sb.id, Metrics: m})
	}
	return out
}

// newest is the ring's most recent sample, or nil when it has none.
func (r *sampleRing) newest() *agentpb.SandboxMetrics {
	n := len(r.buf)
	if n == 0 {
		return nil
	}
	return r.buf[(r.next+n-1)%n]
}
