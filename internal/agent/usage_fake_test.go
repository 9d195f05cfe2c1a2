package agent

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/agentpb"
)

// TestFakeListSandboxMetrics checks the usage sampler's one call per host:
// every running sandbox once, with its limits before the first periodic
// sample and with that sample (the ring's newest, as GetSandboxMetrics's
// history has it) after; paused and destroyed sandboxes are left out.
func TestFakeListSandboxMetrics(t *testing.T) {
	w := newFakeWorld(t)
	// No periodic sampling in the test's time: the test samples itself.
	ta := w.startAgent(t, func(c *Config) { c.SampleInterval = time.Hour })
	ctx := context.Background()
	one := ta.create(t, &agentpb.SandboxConfig{Vcpus: 1, MemoryMb: 256, TimeoutSeconds: 600})
	two := ta.create(t, &agentpb.SandboxConfig{Vcpus: 2, MemoryMb: 512, TimeoutSeconds: 600})
	paused := ta.create(t, &agentpb.SandboxConfig{TimeoutSeconds: 600})
	gone := ta.create(t, &agentpb.SandboxConfig{TimeoutSeconds: 600})
	if _, err := ta.pauseRPC(paused.Id, false); err != nil {
		t.Fatalf("pause %s: %v", paused.Id, err)
	}
	ta.destroyRPC(t, gone.Id)

	list := func() map[string]*agentpb.SandboxMetrics {
		t.Helper()
		resp, err := ta.client.ListSandboxMetrics(ctx, connect.NewRequest(&agentpb.ListSandboxMetricsRequest{}))
		if err != nil {
			t.Fatalf("ListSandboxMetrics: %v", err)
		}
		out := map[string]*agentpb.SandboxMetrics{}
		for _, s := range resp.Msg.Samples {
			if _, dup := out[s.Id]; dup {
				t.Fatalf("sandbox %s listed twice", s.Id)
			}
			out[s.Id] = s.Metrics
		}
		return out
	}
	want := map[string]*agentpb.Sandbox{one.Id: one, two.Id: two}
	check := func(when string, got map[string]*agentpb.SandboxMetrics, sampled bool) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d sandboxes listed, want %d (the running ones: %s and %s)", when, len(got), len(want), one.Id, two.Id)
		}
		for id, sb := range want {
			m := got[id]
			cfg := ta.getRPC(t, id).Config
			if m == nil {
				t.Fatalf("%s: running sandbox %s not listed", when, id)
			}
			if m.CpuCount != cfg.Vcpus || m.MemoryTotalBytes != uint64(cfg.MemoryMb)<<20 || m.DiskTotalBytes != uint64(cfg.DiskBytes) || m.At == nil {
				t.Errorf("%s: sandbox %s (config %v): sample %v, want its limits", when, id, cfg, m)
			}
			if sampled != (m.MemoryUsedBytes > 0) {
				t.Errorf("%s: sandbox %s: memory used %d, want a measured value: %v", when, sb.Id, m.MemoryUsedBytes, sampled)
			}
		}
	}
	check("before any sample", list(), false)

	ta.sampleAll(ctx)
	got := list()
	check("after a sampling pass", got, true)
	for id := range want {
		h, err := ta.client.GetSandboxMetrics(ctx, connect.NewRequest(&agentpb.GetSandboxMetricsRequest{Id: id, Start: got[id].At}))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(h.Msg.History); n != 1 || !h.Msg.History[0].At.AsTime().Equal(got[id].At.AsTime()) {
			t.Errorf("sandbox %s: history from the listed sample's time %v holds %v, want that one sample", id, got[id].At.AsTime(), h.Msg.History)
		}
	}
}
