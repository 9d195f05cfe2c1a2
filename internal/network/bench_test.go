package network

import (
	"context"
	"testing"
	"time"
)

// BenchmarkSetup measures Setup and Teardown of one sandbox network
// (namespace, veth, addresses, rules, shaper), the network's share of an
// agent's create and destroy.
func BenchmarkSetup(b *testing.B) {
	m := newTestManager(b)
	ctx := context.Background()
	var setup, teardown time.Duration
	for range b.N {
		start := time.Now()
		sb, err := m.Setup(ctx, "bench", Options{Internet: true})
		if err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := m.Teardown(ctx, sb); err != nil {
			b.Fatal(err)
		}
		setup += mid.Sub(start)
		teardown += time.Since(mid)
	}
	b.ReportMetric(float64(setup.Microseconds())/float64(b.N)/1000, "setup-ms")
	b.ReportMetric(float64(teardown.Microseconds())/float64(b.N)/1000, "teardown-ms")
}
