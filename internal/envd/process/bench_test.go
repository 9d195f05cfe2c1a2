package process

import (
	"context"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// BenchmarkExecRoundTrip measures `echo hi` through the Connect client over
// HTTP, from the Start call to the end event, per codec.
func BenchmarkExecRoundTrip(b *testing.B) {
	for _, codec := range codecs {
		b.Run(codec, func(b *testing.B) {
			h := newHarness(b, Config{})
			ctx := context.Background()
			var durs []time.Duration
			for b.Loop() {
				t0 := time.Now()
				st, err := h.start(ctx, codec, cmd("echo", "hi"))
				if err != nil {
					b.Fatal(err)
				}
				res, err := st.wait()
				if err != nil {
					b.Fatal(err)
				}
				if res.stdout.String() != "hi\n" {
					b.Fatalf("stdout %q", res.stdout.String())
				}
				durs = append(durs, time.Since(t0))
			}
			reportPercentiles(b, durs)
		})
	}
}

// BenchmarkOSExec is the floor: fork, exec and wait with os/exec, no
// Service (whose reaper would take the exit status) and no RPC.
func BenchmarkOSExec(b *testing.B) {
	var durs []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := exec.Command("echo", "hi").Run(); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(t0))
	}
	reportPercentiles(b, durs)
}

func reportPercentiles(b *testing.B, durs []time.Duration) {
	if len(durs) == 0 {
		return
	}
	slices.Sort(durs)
	at := func(q float64) time.Duration { return durs[min(len(durs)-1, int(q*float64(len(durs))))] }
	b.ReportMetric(float64(at(0.50))/1e3, "p50-µs")
	b.ReportMetric(float64(at(0.99))/1e3, "p99-µs")
}
