package lifecycle

import (
	"context"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/capsulestate"
)

// touchInflight touches, every TouchInterval until ctx ends, the capsules
// this Service is driving (in flight) that are in a transient status: the
// other replicas' reconcilers then know the work is alive, and take a
// transient status nobody touches for three intervals for stuck (see
// Config.Holder).
func (s *Service) touchInflight(ctx context.Context) {
	t := time.NewTicker(s.cfg.TouchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		ids := make([]string, 0, len(s.inflight))
		for id := range s.inflight {
			ids = append(ids, id)
		}
		s.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		if err := s.store.TouchCapsules(ctx, ids, transientStatuses(), s.cfg.Now().UTC()); err != nil && ctx.Err() == nil {
			s.log.Warn("touch the capsules in flight", "count", len(ids), "err", err)
		}
	}
}

// transientStatuses lists the statuses work is in flight in.
func transientStatuses() []nestbox.Status {
	var out []nestbox.Status
	for _, st := range capsulestate.All() {
		if capsulestate.Transient(st) {
			out = append(out, st)
		}
	}
	return out
}
