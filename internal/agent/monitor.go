package agent

import (
	"context"
	"sync"
	"time"

	"nestbox.dev/internal/driver"
)

// monitor finds sandboxes that died on their own (out of memory, a sentry
// panic, someone killing runsc) every MonitorInterval, removes what is left
// of them and reports them crashed. A health probe of envd is the cheap
// first check; only a sandbox that fails it is asked about from the driver,
// which has the final word. It also caps the sandboxes' logs.
func (a *Agent) monitor(ctx context.Context, wg *sync.WaitGroup) {
	a.sweep(ctx, wg, a.cfg.MonitorInterval, EventCrashed, func(ctx context.Context, _ time.Time) []*sandbox {
		a.trimLogs()
		return a.crashed(ctx)
	})
}

// DefaultProbeRate is how many sandboxes the crash monitor probes per
// second at most (Config.ProbeRate). A probe is a TCP connection into the
// sandbox's netstack and a request to envd, work the sandbox's sentry
// does too; without a bound, probing a few hundred idle sandboxes every
// MonitorInterval takes the CPU that creates need.
const DefaultProbeRate = 25

// crashed probes the running sandboxes, at most ProbeRate x
// MonitorInterval of them, those probed longest ago first, and returns
// those the driver no longer runs, marked stopping.
func (a *Agent) crashed(ctx context.Context) []*sandbox {
	rate := a.cfg.ProbeRate
	if rate <= 0 {
		rate = DefaultProbeRate
	}
	running := a.leastRecent(a.allRunning(), max(1, int(rate*a.cfg.MonitorInterval.Seconds())),
		func(sb *sandbox) time.Time { return sb.probedAt })
	now := time.Now()
	a.mu.Lock()
	for _, sb := range running {
		sb.probedAt = now
	}
	a.mu.Unlock()

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		dead []*sandbox
	)
	sem := make(chan struct{}, 8)
	for _, sb := range running {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if a.envd.healthy(ctx, a.dialAddr(sb), time.Second) {
				return
			}
			st, err := a.driver.State(ctx, sb.rid)
			if err != nil {
				sb.log.Warn("crash check", "err", err)
				return
			}
			if st == driver.StateStopped || st == driver.StateNotFound {
				mu.Lock()
				dead = append(dead, sb)
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	a.mu.Lock()
	defer a.mu.Unlock()
	out := dead[:0]
	for _, sb := range dead {
		// Compare and set: a destroy or timeout may have started meanwhile.
		if sb.status == statusRunning {
			sb.status = statusStopping
			out = append(out, sb)
		}
	}
	return out
}
