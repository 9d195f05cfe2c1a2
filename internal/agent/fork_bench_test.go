package agent

import (
	"fmt"
	"testing"
	"time"

	"nestbox.dev/internal/proto/agentpb"
)

// BenchmarkFork measures ForkSandbox through the agent's API (the
// source's checkpoint, the layer copies, the source's restore and every
// fork's restore) and the first command in a fork after it (an exec of
// `true` through envd), for a source that is idle or holds 100 MiB in
// memory, with 1, 5 and 10 forks (issue 12's counts) at the default
// concurrency, and 5 also restored one at a time ("seq"). The forks are
// destroyed between iterations, untimed.
func BenchmarkFork(b *testing.B) {
	for _, size := range pauseSizes[:2] {
		for _, c := range []struct {
			name     string
			count    int
			parallel int
		}{{"1", 1, 0}, {"5", 5, 0}, {"10", 10, 0}, {"5-seq", 5, 1}} {
			b.Run(fmt.Sprintf("%s/count-%s", size.name, c.name), func(b *testing.B) {
				h := newTestHost(b)
				ta := h.startAgent(b, "", func(cfg *Config) { cfg.forkConcurrency = c.parallel })
				src := benchSandbox(b, ta, size.mib)
				var fork, first []time.Duration
				b.ResetTimer()
				for range b.N {
					var forks []*agentpb.SandboxConfig
					for range c.count {
						forks = append(forks, forkConfig("bench"))
					}
					start := time.Now()
					resp, err := ta.forkRPC(src.Id, forks...)
					if err != nil {
						b.Fatalf("fork: %v", err)
					}
					fork = append(fork, time.Since(start))
					for _, r := range resp.Forks {
						if r.Sandbox == nil {
							b.Fatalf("fork %s: %s", r.Id, r.Error)
						}
					}
					start = time.Now()
					mustSh(b, ta.process(forks[0].Id, "bench", "root"), "true")
					first = append(first, time.Since(start))
					b.StopTimer()
					for _, f := range forks {
						ta.destroyRPC(b, f.Id)
					}
					b.StartTimer()
				}
				b.StopTimer()
				reportNamed(b, "fork", fork)
				reportNamed(b, "first-exec", first)
				for i := range fork {
					fork[i] += first[i]
				}
				reportNamed(b, "fork-to-exec", fork)
			})
		}
	}
}
