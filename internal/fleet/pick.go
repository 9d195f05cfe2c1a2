package fleet

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"nestbox.dev"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/store"
)

// Pick places a new capsule: among the hosts that take capsules (active,
// reachable, heard from recently) and have room for req, it samples
// Config.Sample at random and takes the best scored (best of K, as large
// schedulers do: as good as comparing all on average, and no control
// plane sends every create to the same least-loaded host). No host with
// room is lifecycle.ErrNoCapacity (503, with Retry-After).
func (r *Registry) Pick(ctx context.Context, req nestbox.CreateCapsuleRequest) (lifecycle.Host, error) {
	hs := r.snapshot(ctx)
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var fits []candidate
	var why []string
	for _, h := range hs {
		c := candidate{h: h, p: r.placed[h.ID]}
		if c.p.seen != h.LastSeen {
			c.p = placement{seen: h.LastSeen} // placements older than the report are in it
		}
		reason := c.refuse(req, now.Sub(h.LastSeen) > r.cfg.UnreachableAfter)
		if reason != "" {
			why = append(why, h.ID+": "+reason)
			continue
		}
		fits = append(fits, c)
	}
	if len(fits) == 0 {
		if len(hs) == 0 {
			return lifecycle.Host{}, fmt.Errorf("no host is registered (join one with `nestbox agent --control-plane URL --join-token T`): %w", lifecycle.ErrNoCapacity)
		}
		return lifecycle.Host{}, fmt.Errorf("no host has room for %d vCPUs and %d MiB (%s): %w",
			req.VCPUs, req.MemoryMB, joinReasons(why), lifecycle.ErrNoCapacity)
	}
	// Best of K sampled without replacement.
	r.rnd.Shuffle(len(fits), func(i, j int) { fits[i], fits[j] = fits[j], fits[i] })
	best := fits[0]
	for _, c := range fits[1:min(r.cfg.Sample, len(fits))] {
		if c.score(req) > best.score(req) {
			best = c
		}
	}
	p := best.p
	p.memory += uint64(max(req.MemoryMB, 0)) << 20
	p.vcpus += uint32(max(req.VCPUs, 0))
	p.count++
	r.placed[best.h.ID] = p
	return r.hostOf(best.h), nil
}

// candidate is a host with what this control plane placed on it since
// its last report.
type candidate struct {
	h store.Host
	p placement
}

// refuse says why the host takes no capsule like req, or "".
func (c candidate) refuse(req nestbox.CreateCapsuleRequest, stale bool) string {
	h, k := c.h, c.h.Capacity
	switch {
	case h.State != store.HostActive:
		return string(h.State)
	case h.Unreachable || stale:
		return "unreachable"
	case k.MemoryTotalBytes == 0:
		return "no heartbeat yet"
	case req.VCPUs > 0 && k.CPUs > 0 && uint32(req.VCPUs) > k.CPUs:
		return fmt.Sprintf("%d cores", k.CPUs)
	case k.MaxSandboxes > 0 && k.Sandboxes+c.p.count >= k.MaxSandboxes:
		return "at its maximum of capsules"
	case k.MemoryTotalBytes > 0 && k.MemoryAvailableBytes < k.MemoryReservedBytes+c.p.memory:
		return "short of memory"
	case k.MemoryCommitLimit > 0 && k.MemoryAllocatedBytes+c.p.memory+uint64(max(req.MemoryMB, 0))<<20 > k.MemoryCommitLimit:
		return "its memory is committed"
	case k.DiskTotalBytes > 0 && k.DiskAvailableBytes < k.DiskReservedBytes:
		return "low on disk"
	}
	return ""
}

// score ranks a host for req: the share of its committable memory left
// after req, plus a bonus when it holds req's template (no build, warm
// page cache) and a larger one when its warm pool holds a sandbox of it
// ready (a start in milliseconds; the report may be a heartbeat old, and
// a miss is only a cold start).
func (c candidate) score(req nestbox.CreateCapsuleRequest) float64 {
	k := c.h.Capacity
	s := 0.0
	if limit := k.MemoryCommitLimit; limit > 0 {
		used := k.MemoryAllocatedBytes + c.p.memory + uint64(max(req.MemoryMB, 0))<<20
		s = 1 - float64(min(used, limit))/float64(limit)
	}
	if req.Template != "" && slices.Contains(k.Templates, req.Template) {
		s += 0.25
	}
	if req.Template != "" && slices.Contains(k.Pooled, req.Template) {
		s += 0.5
	}
	return s
}

func joinReasons(why []string) string {
	const most = 5
	if len(why) > most {
		return fmt.Sprintf("%s and %d more", strings.Join(why[:most], "; "), len(why)-most)
	}
	return strings.Join(why, "; ")
}
