package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/capsulestate"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/events"
	"nestbox.dev/internal/store"
)

// transition moves capsule id from one of the statuses in from (and from
// generation u.Generation, if set) to u.To and publishes the change, which
// carries the generation it produced. Every from → u.To must be in the
// state machine. On a conflict it returns the capsule as it is and an
// error of kind errdefs.ErrConflict.
func (s *Service) transition(ctx context.Context, id string, from []nestbox.Status, u store.StatusUpdate) (store.Capsule, error) {
	if err := capsulestate.Check(from, u.To); err != nil {
		return store.Capsule{}, fmt.Errorf("capsule %s: %w", id, err)
	}
	if u.At.IsZero() {
		u.At = s.cfg.Now().UTC()
	}
	var prev nestbox.Status
	if len(from) == 1 {
		prev = from[0]
	}
	ev := eventOf(id, prev, u)
	c, err := s.store.UpdateCapsuleStatus(ctx, id, from, u)
	switch {
	case err == nil:
		ev.Generation = c.Generation
		s.publish(ctx, ev)
	case prev != "" && !errors.Is(err, errdefs.ErrConflict) && !errors.Is(err, errdefs.ErrNotFound):
		// The store failed (busy, briefly unreachable): the event
		// stream's consumer retries the change, from the generation
		// the writer saw if it named one.
		if u.Generation != 0 {
			ev.Generation = u.Generation + 1
		}
		s.publish(ctx, ev)
	}
	return c, err
}

// publish sends an event; a stream that refuses it costs waiters only
// latency (they re-read the store), so the error is logged, not returned.
func (s *Service) publish(ctx context.Context, ev nestbox.CapsuleEvent) {
	if err := s.ev.Publish(ctx, ev); err != nil {
		s.metrics.publishErr.Inc()
		s.log.Warn("publish capsule event", "capsule", ev.CapsuleID, "to", ev.To, "err", err)
	}
}

// eventOf is the event of the change u from status from: every field of u
// travels with it, so that a consumer that applies it applies all of it.
func eventOf(id string, from nestbox.Status, u store.StatusUpdate) nestbox.CapsuleEvent {
	ev := nestbox.CapsuleEvent{CapsuleID: id, From: from, To: u.To, Reason: u.Reason, At: u.At, HostID: u.HostID, EnvdVersion: u.EnvdVersion, DiskMB: u.DiskMB}
	for _, f := range []struct {
		dst **time.Time
		v   time.Time
	}{{&ev.StartedAt, u.StartedAt}, {&ev.ExpiresAt, u.ExpiresAt}, {&ev.StoppedAt, u.StoppedAt}} {
		if !f.v.IsZero() {
			*f.dst = &f.v
		}
	}
	if p := u.Pause; p != nil {
		at := p.At
		ev.PausedAt, ev.PausedMemory, ev.RemainingMS = &at, p.Memory, p.Remaining.Milliseconds()
	}
	return ev
}

// updateOf is the inverse of eventOf.
func updateOf(ev nestbox.CapsuleEvent) store.StatusUpdate {
	u := store.StatusUpdate{To: ev.To, Reason: ev.Reason, At: ev.At, HostID: ev.HostID, EnvdVersion: ev.EnvdVersion, DiskMB: ev.DiskMB}
	for _, f := range []struct {
		dst *time.Time
		v   *time.Time
	}{{&u.StartedAt, ev.StartedAt}, {&u.ExpiresAt, ev.ExpiresAt}, {&u.StoppedAt, ev.StoppedAt}} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
	if ev.PausedAt != nil {
		u.Pause = &store.Pause{At: *ev.PausedAt, Memory: ev.PausedMemory, Remaining: time.Duration(ev.RemainingMS) * time.Millisecond}
	}
	if ev.Generation > 0 {
		// The change was made from the generation before the one it
		// produced; a capsule at any other has changed since (ABA).
		u.Generation = ev.Generation - 1
	}
	return u
}

// consume applies the event stream to the store until ctx is done: an
// event whose change is not recorded yet (its writer failed after
// publishing, or wrote through another control plane instance) is applied,
// with every field of the change, by compare-and-set, which makes applying
// one twice harmless. A stream that fails is subscribed to again with
// backoff (events.Follow), so a stream down at start or restarted later
// costs latency, never the consumer.
func (s *Service) consume(ctx context.Context) {
	events.Follow(ctx, s.ev, s.log, func(ev nestbox.CapsuleEvent) {
		s.metrics.observeEvent(ev, s.cfg.Now())
		if ev.From == "" || ev.To == "" || !capsulestate.Allowed(ev.From, ev.To) {
			return // a first event, a gap marker, or not a change of the machine
		}
		_, err := s.store.UpdateCapsuleStatus(ctx, ev.CapsuleID, []nestbox.Status{ev.From}, updateOf(ev))
		if err != nil && !errors.Is(err, errdefs.ErrConflict) && !errors.Is(err, errdefs.ErrNotFound) && ctx.Err() == nil {
			s.log.Warn("apply capsule event", "capsule", ev.CapsuleID, "to", ev.To, "err", err)
		}
	})
}
