package usage

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"nestbox.dev"
	"nestbox.dev/internal/lifecycle/fakehost"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlite"
)

// BenchmarkSample is one sampling pass over 1000 running capsules on one
// host (an in-process fake agent: the store's part, listing the capsules
// and inserting their rows, is what is measured), on SQLite.
func BenchmarkSample(b *testing.B) {
	ctx := b.Context()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "nestbox.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateUser(ctx, store.User{ID: "u", CreatedAt: day0}); err != nil {
		b.Fatal(err)
	}
	if err := st.CreateTeam(ctx, store.Team{ID: "t", CreatedAt: day0}, "u"); err != nil {
		b.Fatal(err)
	}
	agent := fakehost.New()
	const n = 1000
	for i := range n {
		id := fmt.Sprintf("c%04d", i)
		if err := st.CreateCapsule(ctx, store.Capsule{Capsule: nestbox.Capsule{ID: id, TeamID: "t", HostID: "h1", Status: nestbox.StatusRunning,
			VCPUs: 1, MemoryMB: 512, DiskMB: 2048, CreatedAt: day0}, UpdatedAt: day0, Generation: 1}); err != nil {
			b.Fatal(err)
		}
		if _, err := agent.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: &agentpb.SandboxConfig{Id: id, Vcpus: 1, MemoryMb: 512}})); err != nil {
			b.Fatal(err)
		}
		agent.AddSample(id, &agentpb.SandboxMetrics{At: timestamppb.New(day0), CpuUsedPct: 12.5, MemoryUsedBytes: 100 << 20, DiskUsedBytes: 300 << 20})
	}
	c := &clock{t: day0.Add(time.Hour)}
	w, err := New(Config{Store: st, Hosts: hostList{{ID: "h1", Agent: agent}}, Now: c.now})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		c.add(30 * time.Second)
		got, err := w.Sample(ctx)
		if err != nil || got != n {
			b.Fatalf("Sample = %d, %v; want %d", got, err, n)
		}
	}
}

// BenchmarkReport is a 92-day report of a team with 1000 capsules sampled
// every 30 s: 91 rolled days, and today live at 12:30 (twelve hours rolled,
// half an hour of samples after them), as the Worker leaves it.
func BenchmarkReport(b *testing.B) {
	ctx := b.Context()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "nestbox.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	today := day0.AddDate(0, 0, 91)
	for d := range 91 {
		if err := st.AddUsageSamples(ctx, []store.UsageSample{{TeamID: "t", CapsuleID: "c", At: day0.AddDate(0, 0, d), Seconds: 30, VCPUs: 1, MemoryMB: 512}}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := store.RollUsage(ctx, st, today); err != nil {
		b.Fatal(err)
	}
	var live []store.UsageSample
	for pass := range 1500 { // 12.5 hours at 30 s
		for c := range 1000 {
			live = append(live, store.UsageSample{TeamID: "t", CapsuleID: fmt.Sprintf("c%04d", c), At: today.Add(time.Duration(pass) * 30 * time.Second), Seconds: 30, VCPUs: 1, MemoryMB: 512})
		}
	}
	if err := st.AddUsageSamples(ctx, live); err != nil {
		b.Fatal(err)
	}
	if _, err := store.RollUsageHours(ctx, st, today.Add(12*time.Hour+30*time.Minute)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r, err := Report(ctx, st, "t", day0, today, today.Add(12*time.Hour+30*time.Minute))
		if err != nil || len(r.Days) != 92 || r.Days[91].Capsules != 1000 {
			b.Fatalf("Report: %d days, %v", len(r.Days), err)
		}
	}
}
