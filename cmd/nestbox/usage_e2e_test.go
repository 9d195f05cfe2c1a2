package main

import (
	"context"
	"testing"
	"time"

	"nestbox.dev"
)

// TestUsageOnUp runs the usage accounting of a real `nestbox up`: a
// running capsule is sampled from its real agent (ListSandboxMetrics over
// the agent's authenticated API, from the rings of its real runsc stats)
// and the report counts it by allocation and by what was measured.
func TestUsageOnUp(t *testing.T) {
	p := startUp(t, "--usage-interval", "1s")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := p.client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal", VCPUs: 1, MemoryMB: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Kill(context.WithoutCancel(ctx))
	info, err := h.Info(ctx)
	if err != nil || info.DiskMB == 0 {
		t.Fatalf("capsule %+v, %v: want its disk size", info, err)
	}
	// Two days, so that a run across midnight (UTC) still sees it all.
	opts := nestbox.UsageOptions{From: time.Now().UTC().AddDate(0, 0, -1), To: time.Now().UTC()}
	var r nestbox.UsageReport
	for {
		if r, err = p.client.Usage(ctx, opts); err != nil {
			t.Fatal(err)
		}
		// The agent samples every 5 s: wait for passes with its
		// measurements, not only the capsule's allocation.
		if r.Total.VCPUSeconds >= 3 && r.Total.MemoryUsedGiBSeconds > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no measured usage of a running capsule after 2 minutes: %+v", r)
		}
		time.Sleep(500 * time.Millisecond)
	}
	u, secs := r.Total, float64(r.Total.VCPUSeconds) // one vCPU
	if want := secs * 256 / 1024; u.MemoryGiBSeconds != want {
		t.Errorf("memory %v GiB-s for %v s of 256 MiB, want %v", u.MemoryGiBSeconds, secs, want)
	}
	if want := secs * float64(info.DiskMB) / 1024; u.DiskGiBSeconds != want {
		t.Errorf("disk %v GiB-s for %v s of %d MiB, want %v", u.DiskGiBSeconds, secs, info.DiskMB, want)
	}
	if u.MemoryUsedGiBSeconds > u.MemoryGiBSeconds || u.CPUSecondsUsed > secs {
		t.Errorf("measured use %+v passes the allocation", u)
	}
	live := r.Days[len(r.Days)-1]
	if !live.Live || live.Capsules != 1 {
		t.Errorf("today %+v, want live with the one capsule", live)
	}
}
