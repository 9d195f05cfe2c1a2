package lifecycle

import (
	"context"
	"errors"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// transition moves capsule id from one of the statuses in from to u.To and
// publishes the change. On a conflict it returns the capsule as it is and
// an error of kind errdefs.ErrConflict.
func (s *Service) transition(ctx context.Context, id string, from []nestbox.Status, u store.StatusUpdate) (store.Capsule, error) {
	if u.At.IsZero() {
		u.At = s.cfg.Now().UTC()
	}
	var prev nestbox.Status
	if len(from) == 1 {
		prev = from[0]
	}
	ev := nestbox.CapsuleEvent{CapsuleID: id, From: prev, To: u.To, Reason: u.Reason, At: u.At}
	c, err := s.store.UpdateCapsuleStatus(ctx, id, from, u)
	switch {
	case err == nil:
		s.publish(ctx, ev)
	case prev != "" && !errors.Is(err, errdefs.ErrConflict) && !errors.Is(err, errdefs.ErrNotFound):
		// The store failed (busy, briefly unreachable): the event
		// stream's consumer retries the change.
		s.publish(ctx, ev)
	}
	return c, err
}

// publish sends an event; a stream that refuses it costs waiters only
// latency (they re-read the store), so the error is logged, not returned.
func (s *Service) publish(ctx context.Context, ev nestbox.CapsuleEvent) {
	if err := s.ev.Publish(ctx, ev); err != nil {
		s.log.Warn("publish capsule event", "capsule", ev.CapsuleID, "to", ev.To, "err", err)
	}
}

// consume applies the event stream to the store: an event whose change is
// not recorded yet (its writer failed after publishing, or wrote through
// another control plane instance) is applied by compare-and-set, which
// makes applying one twice harmless.
func (s *Service) consume(ctx context.Context) {
	ch, err := s.ev.Subscribe(ctx)
	if err != nil {
		s.log.Warn("subscribe to capsule events", "err", err)
		return
	}
	for ev := range ch {
		if ev.From == "" || ev.To == "" {
			continue // a first event or a gap marker: nothing to apply
		}
		_, err := s.store.UpdateCapsuleStatus(ctx, ev.CapsuleID, []nestbox.Status{ev.From}, store.StatusUpdate{To: ev.To, Reason: ev.Reason, At: ev.At})
		if err != nil && !errors.Is(err, errdefs.ErrConflict) && !errors.Is(err, errdefs.ErrNotFound) && ctx.Err() == nil {
			s.log.Warn("apply capsule event", "capsule", ev.CapsuleID, "to", ev.To, "err", err)
		}
	}
}
