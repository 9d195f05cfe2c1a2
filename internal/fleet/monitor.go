package fleet

import (
	"context"
	"time"
)

// monitorLease is the lease under which one control plane at a time runs
// the host monitor.
const monitorLease = "host-monitor"

// Run is the host monitor, until ctx ends: every heartbeat interval, the
// control plane that holds the monitor's lease marks the hosts not heard
// from for UnreachableAfter unreachable (a compare-and-set in the store,
// so a host is reported once) and hands each to the HostWatcher.
func (r *Registry) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		r.monitorOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// monitorOnce is one pass of the monitor.
//
// While the store is down no replica can record a heartbeat, so every
// host looks silent once it is back: the monitor judges no host until the
// store has been reachable for UnreachableAfter again, long enough for
// every live host to have reported since.
func (r *Registry) monitorOnce(ctx context.Context) {
	now := r.cfg.Now()
	held, err := r.cfg.Store.AcquireLease(ctx, monitorLease, r.cfg.Holder, now.Add(3*r.cfg.HeartbeatInterval), now)
	if err != nil {
		if ctx.Err() == nil {
			r.storeDown = true
			r.log.Warn("acquire the host monitor's lease", "err", err)
		}
		return
	}
	if r.storeDown {
		r.storeDown, r.storeBack = false, now
	}
	if !held || now.Sub(r.storeBack) < r.cfg.UnreachableAfter {
		return
	}
	ids, err := r.cfg.Store.MarkHostsUnreachable(ctx, now.Add(-r.cfg.UnreachableAfter))
	if err != nil {
		if ctx.Err() == nil {
			r.storeDown = true
			r.log.Warn("mark hosts unreachable", "err", err)
		}
		return
	}
	if len(ids) > 0 {
		r.reload(ctx)
	}
	for _, id := range ids {
		r.log.Warn("host unreachable: no heartbeat", "host", id, "after", r.cfg.UnreachableAfter)
		if w := r.hostWatcher(); w != nil {
			if err := w.HostUnreachable(ctx, id); err != nil {
				r.log.Warn("mark the capsules of an unreachable host missing", "host", id, "err", err)
			}
		}
	}
}
