package lifecycle

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
)

// MetricsRange samples a running capsule's resource use now, and returns
// the samples its host kept (every few seconds, for a bounded time) that
// were taken in [start, end], oldest first. A zero bound is open; with both
// zero no history is asked for. A start after end is errdefs.ErrInvalid.
func (s *Service) MetricsRange(ctx context.Context, teamID, id string, start, end time.Time) (nestbox.Metrics, []nestbox.Metrics, error) {
	if !start.IsZero() && !end.IsZero() && start.After(end) {
		return nestbox.Metrics{}, nil, errdefs.Invalid("metrics of capsule %s: start %s is after end %s", id, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	}
	_, host, err := s.runningNow(ctx, teamID, id)
	if err != nil {
		return nestbox.Metrics{}, nil, err
	}
	req := &agentpb.GetSandboxMetricsRequest{Id: id}
	if !start.IsZero() {
		req.Start = timestamppb.New(start)
	}
	if !end.IsZero() {
		req.End = timestamppb.New(end)
	}
	cctx, cancel := s.callContext(ctx, callQuery)
	defer cancel()
	resp, err := host.Agent.GetSandboxMetrics(cctx, connect.NewRequest(req))
	if err != nil {
		return nestbox.Metrics{}, nil, fmt.Errorf("metrics of capsule %s: %w", id, errdefs.FromConnect(err))
	}
	var history []nestbox.Metrics
	for _, m := range resp.Msg.GetHistory() {
		history = append(history, metricsOf(m))
	}
	return metricsOf(resp.Msg.GetMetrics()), history, nil
}

func metricsOf(m *agentpb.SandboxMetrics) nestbox.Metrics {
	return nestbox.Metrics{
		At:               m.GetAt().AsTime().UTC(),
		CPUUsedPct:       m.GetCpuUsedPct(),
		CPUCount:         int(m.GetCpuCount()),
		MemoryUsedBytes:  m.GetMemoryUsedBytes(),
		MemoryTotalBytes: m.GetMemoryTotalBytes(),
		DiskUsedBytes:    m.GetDiskUsedBytes(),
		DiskTotalBytes:   m.GetDiskTotalBytes(),
		RxBytes:          m.GetRxBytes(),
		TxBytes:          m.GetTxBytes(),
	}
}
