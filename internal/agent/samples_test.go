package agent

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/driver/fake"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
)

var ringT0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func sampleAt(sec int) *agentpb.SandboxMetrics {
	return &agentpb.SandboxMetrics{At: timestamppb.New(ringT0.Add(time.Duration(sec) * time.Second)), MemoryUsedBytes: uint64(sec)}
}

// secs is the sample times of ms, in seconds after ringT0.
func secs(ms []*agentpb.SandboxMetrics) []int {
	out := make([]int, len(ms))
	for i, m := range ms {
		out[i] = int(m.GetAt().AsTime().Sub(ringT0) / time.Second)
	}
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSampleRing(t *testing.T) {
	var r sampleRing
	if got := r.between(time.Time{}, time.Time{}); len(got) != 0 {
		t.Fatalf("an empty ring holds %v", secs(got))
	}
	// More than the ring holds, five seconds apart: the oldest go.
	const n = maxSamples + 30
	for i := range n {
		r.add(sampleAt(5 * i))
	}
	all := r.between(time.Time{}, time.Time{})
	if len(all) != maxSamples {
		t.Fatalf("the ring holds %d samples after %d, want %d", len(all), n, maxSamples)
	}
	got := secs(all)
	for i, s := range got {
		if want := 5 * (n - maxSamples + i); s != want {
			t.Fatalf("sample %d was taken at %d s, want %d (oldest first, the first %d dropped)", i, s, want, n-maxSamples)
		}
	}
	last := 5 * (n - 1)
	for _, tc := range []struct {
		name       string
		start, end time.Time
		want       []int
	}{
		{"closed range, bounds inclusive", ringT0.Add(time.Duration(last-10) * time.Second), ringT0.Add(time.Duration(last-5) * time.Second), []int{last - 10, last - 5}},
		{"between two samples", ringT0.Add(time.Duration(last-9) * time.Second), ringT0.Add(time.Duration(last-6) * time.Second), nil},
		{"open end", ringT0.Add(time.Duration(last-7) * time.Second), time.Time{}, []int{last - 5, last}},
		{"open start", time.Time{}, ringT0.Add(time.Duration(5*(n-maxSamples)+5) * time.Second), []int{5 * (n - maxSamples), 5*(n-maxSamples) + 5}},
		{"dropped samples", ringT0, ringT0.Add(100 * time.Second), nil},
		{"end before start", ringT0.Add(time.Duration(last) * time.Second), ringT0.Add(time.Duration(last-5) * time.Second), nil},
	} {
		if got := secs(r.between(tc.start, tc.end)); !equalInts(got, tc.want) {
			t.Errorf("%s: samples at %v, want %v", tc.name, got, tc.want)
		}
	}
	// A sample older than the newest is dropped: the ring stays in order.
	r.add(sampleAt(last - 1))
	if got := secs(r.between(ringT0.Add(time.Duration(last-6)*time.Second), time.Time{})); !equalInts(got, []int{last - 5, last}) {
		t.Errorf("after an out-of-order sample: %v", got)
	}
}

// TestSampleAllAndHistory samples sandboxes of a fake driver and reads
// their history through the RPC handler, as the control plane does.
func TestSampleAllAndHistory(t *testing.T) {
	ctx := context.Background()
	d := &fake.Driver{}
	a := &Agent{driver: d, log: slog.New(slog.DiscardHandler), sandboxes: map[string]*sandbox{}}
	for _, id := range []string{"sb1", "sb2"} {
		if err := d.Create(ctx, driver.Spec{ID: id}); err != nil {
			t.Fatal(err)
		}
		a.sandboxes[id] = &sandbox{id: id, rid: id, log: a.log, status: statusRunning, startedAt: time.Now(),
			cfg: &agentpb.SandboxConfig{Id: id, Vcpus: 2, MemoryMb: 256}}
	}
	// A sandbox being created is not sampled.
	a.sandboxes["sb3"] = &sandbox{id: "sb3", rid: "sb3", log: a.log, status: statusCreating, cfg: &agentpb.SandboxConfig{Id: "sb3"}}

	before := time.Now()
	for range 3 {
		a.sampleAll(ctx)
		time.Sleep(2 * time.Millisecond)
	}
	after := time.Now()
	svc := service{a: a}
	get := func(id string, start, end *timestamppb.Timestamp) (*agentpb.GetSandboxMetricsResponse, error) {
		resp, err := svc.GetSandboxMetrics(ctx, connect.NewRequest(&agentpb.GetSandboxMetricsRequest{Id: id, Start: start, End: end}))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	for _, id := range []string{"sb1", "sb2"} {
		m, err := get(id, timestamppb.New(before), timestamppb.New(after))
		if err != nil {
			t.Fatalf("metrics of %s: %v", id, err)
		}
		if len(m.History) != 3 || m.Metrics == nil {
			t.Fatalf("metrics of %s over the sampling: %d samples in the history, current %v; want 3 and a reading", id, len(m.History), m.Metrics)
		}
		for i, s := range m.History {
			at := s.GetAt().AsTime()
			if at.Before(before) || at.After(after) || s.GetCpuCount() != 2 || s.GetMemoryTotalBytes() != 256<<20 {
				t.Errorf("%s sample %d: %v", id, i, s)
			}
			if i > 0 && at.Before(m.History[i-1].GetAt().AsTime()) {
				t.Errorf("%s: sample %d is older than the one before it", id, i)
			}
		}
		// Without a range, no history; a range that ends before the
		// sampling holds nothing.
		if m, err := get(id, nil, nil); err != nil || len(m.History) != 0 {
			t.Errorf("metrics of %s without a range: %v, %d samples; want none", id, err, len(m.GetHistory()))
		}
		if m, err := get(id, nil, timestamppb.New(before.Add(-time.Second))); err != nil || len(m.History) != 0 {
			t.Errorf("metrics of %s before the sampling: %v, %d samples; want none", id, err, len(m.GetHistory()))
		}
		// Reading the current metrics does not add to the history.
		if m, err := get(id, timestamppb.New(before), nil); err != nil || len(m.History) != 3 {
			t.Errorf("metrics of %s after reads: %v, %d samples; want 3", id, err, len(m.GetHistory()))
		}
	}
	if len(a.sandboxes["sb3"].samples.buf) != 0 {
		t.Error("a creating sandbox was sampled")
	}
	// The history goes with the sandbox.
	a.forget(a.sandboxes["sb1"])
	if _, err := get("sb1", timestamppb.New(before), nil); !errors.Is(errdefs.FromConnect(err), errdefs.ErrNotFound) {
		t.Errorf("metrics of a forgotten sandbox: %v, want not found", err)
	}
}
