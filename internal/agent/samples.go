package agent

import (
	"context"
	"slices"
	"sync"
	"time"

	"nestbox.dev/internal/proto/agentpb"
)

// Metrics history: the agent samples every running sandbox's resource use
// every SampleInterval and keeps the last maxSamples of each in a ring on
// the sandbox's record, so a ring is dropped with its sandbox. The control
// plane asks for a time range of them (E2B's getMetrics({start, end})).
// This is a short history only, not usage accounting: an agent restart
// starts every ring afresh.

const (
	// DefaultSampleInterval is how often sandboxes are sampled, as E2B
	// does.
	DefaultSampleInterval = 5 * time.Second
	// maxSamples bounds a sandbox's ring: an hour at the default
	// interval, about 50 KiB.
	maxSamples = 720
	// DefaultSampleRate is how many sandboxes the sampler reads per
	// second at most. One reading is a runsc process and work in the
	// sandbox's sentry; without a bound the sampling of a few hundred
	// idle sandboxes takes the CPU that creates need. Up to
	// DefaultSampleRate x SampleInterval (20) sandboxes each one is read
	// every SampleInterval; past it, each one every count/rate seconds.
	DefaultSampleRate = 4
)

// sampleRing holds a sandbox's most recent samples, oldest first once
// read. The zero value is an empty ring. Not safe for concurrent use: the
// agent guards it with Agent.mu.
type sampleRing struct {
	buf  []*agentpb.SandboxMetrics // at most maxSamples
	next int                       // where the next sample goes once buf is full
}

// add records m, dropping the oldest sample when the ring is full. A
// sample older than the newest one kept is dropped: the ring stays in time
// order (an on-demand reading can race a periodic one).
func (r *sampleRing) add(m *agentpb.SandboxMetrics) {
	if n := len(r.buf); n > 0 {
		newest := r.buf[(r.next+n-1)%n]
		if m.GetAt().AsTime().Before(newest.GetAt().AsTime()) {
			return
		}
	}
	if len(r.buf) < maxSamples {
		r.buf = append(r.buf, m)
		return
	}
	r.buf[r.next] = m
	r.next = (r.next + 1) % maxSamples
}

// between returns the samples taken in [start, end], oldest first; a zero
// bound is open.
func (r *sampleRing) between(start, end time.Time) []*agentpb.SandboxMetrics {
	var out []*agentpb.SandboxMetrics
	n := len(r.buf)
	for i := range n {
		m := r.buf[(r.next+i)%n]
		at := m.GetAt().AsTime()
		if (!start.IsZero() && at.Before(start)) || (!end.IsZero() && at.After(end)) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// sampleMetrics samples every running sandbox every interval (zero means
// DefaultSampleInterval) until ctx is done. Run starts it.
func (a *Agent) sampleMetrics(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultSampleInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.sampleAll(ctx)
		}
	}
}

// sampleAll takes one sample of every running sandbox, a few at a time,
// and keeps it in the sandbox's ring. Only these periodic samples are kept:
// a client polling the current reading must not push the history out.
// A sandbox that fails (it is being destroyed, or crashed) is skipped: the
// crash monitor owns that.
//
// At most SampleRate x SampleInterval sandboxes are read per call, those
// read longest ago first, so that the sampling costs the host the same
// however many sandboxes run; each is also the look at its writable layer
// that admission uses.
func (a *Agent) sampleAll(ctx context.Context) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, sb := range a.leastRecent(a.allRunning(), a.sampleBudget(), func(sb *sandbox) time.Time { return sb.lastStats.At }) {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			m, err := a.metrics(ctx, sb.id)
			if err != nil {
				sb.log.Debug("metrics sample", "err", err)
				return
			}
			a.mu.Lock()
			sb.samples.add(m)
			a.mu.Unlock()
			a.noteLayer(sb)
		})
	}
	wg.Wait()
}

// sampleBudget is how many sandboxes one sampling round reads at most.
func (a *Agent) sampleBudget() int {
	rate, every := a.cfg.SampleRate, a.cfg.SampleInterval
	if rate <= 0 {
		rate = DefaultSampleRate
	}
	if every <= 0 {
		every = DefaultSampleInterval
	}
	return max(1, int(rate*every.Seconds()))
}

// leastRecent returns the n sandboxes of sbs whose last(sb) is oldest
// (all of them when there are no more than n), reading last under a.mu.
func (a *Agent) leastRecent(sbs []*sandbox, n int, last func(*sandbox) time.Time) []*sandbox {
	if len(sbs) <= n {
		return sbs
	}
	at := make(map[*sandbox]time.Time, len(sbs))
	a.mu.Lock()
	for _, sb := range sbs {
		at[sb] = last(sb)
	}
	a.mu.Unlock()
	slices.SortStableFunc(sbs, func(x, y *sandbox) int { return at[x].Compare(at[y]) })
	return sbs[:n]
}

// history returns sandbox id's kept samples taken in [start, end].
func (a *Agent) history(id string, start, end time.Time) ([]*agentpb.SandboxMetrics, error) {
	sb, err := a.running(id)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return sb.samples.between(start, end), nil
}
