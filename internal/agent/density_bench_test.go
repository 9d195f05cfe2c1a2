package agent

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"nestbox.dev/internal/proto/agentpb"
)

// BenchmarkDensityBase creates densityN idle `base` sandboxes one after
// another and reports the create rate, create p50/p99, the host memory each
// idle sandbox costs (MemAvailable before and after, settled), and how many
// would fit before 80 % of the host's memory is used, extrapolated from
// that cost. Run it with -benchtime 1x: one round is densityN creates.
func BenchmarkDensityBase(b *testing.B) {
	n := 20
	if v, err := strconv.Atoi(os.Getenv("NESTBOX_DENSITY_N")); err == nil && v > 0 {
		n = v
	}
	h := newTestHost(b)
	ta := h.startAgent(b, "", nil)
	ta.destroyRPC(b, ta.create(b, &agentpb.SandboxConfig{Template: "base"}).Id) // builds the template
	for range b.N {
		time.Sleep(2 * time.Second)
		total, before := meminfo(b)
		var ds []time.Duration
		var ids []string
		start := time.Now()
		for range n {
			t0 := time.Now()
			sb := ta.create(b, &agentpb.SandboxConfig{Template: "base", TimeoutSeconds: 3600})
			ds = append(ds, time.Since(t0))
			ids = append(ids, sb.Id)
		}
		elapsed := time.Since(start)
		time.Sleep(5 * time.Second) // let the sandboxes go idle
		_, after := meminfo(b)
		per := float64(before-after) / float64(n)
		b.ReportMetric(float64(n)/elapsed.Seconds(), "creates/s")
		b.ReportMetric(per/(1<<20), "MiB/sandbox")
		if per > 0 {
			b.ReportMetric(0.8*float64(total)/per, "fit@80%")
		}
		reportPercentiles(b, ds)
		for _, id := range ids {
			ta.destroyRPC(b, id)
		}
	}
}

// meminfo returns MemTotal and MemAvailable in bytes.
func meminfo(b *testing.B) (total, avail int64) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "MemTotal:":
			total = v << 10
		case "MemAvailable:":
			avail = v << 10
		}
	}
	return total, avail
}
