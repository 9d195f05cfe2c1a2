package lifecycle

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
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

// fallbackGroup is the consumer group of the fallback writer, one for
// every control plane sharing the stream: each event is applied by one of
// them.
const fallbackGroup = "nestbox-fallback-writer"

// fallbackGiveUp is how old an event may be for the fallback writer to
// still try it: one the store refused for that long (an outage) is left to
// the reconcile, which resolves every transient status from the hosts.
const fallbackGiveUp = 10 * time.Minute

// consume applies the event stream to the store until ctx is done: an
// event whose change is not recorded yet (its writer failed after
// publishing, or wrote through another control plane instance) is applied,
// with every field of the change, by compare-and-set, which makes applying
// one twice harmless. Several control planes share the work through one
// consumer group (events.Stream.Consume): each event is applied by one of
// them, and one a control plane took and did not apply (it died, or the
// store failed) is taken over after the group's claim idle time. Consume
// rides out the stream's failures; it is started again with backoff if it
// fails at once (a stream down at start).
//
// The event-stream metrics (lag, gaps) come from a subscription of its
// own: every control plane sees every event there, as its waiters and
// caches do.
func (s *Service) consume(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		events.Follow(ctx, s.ev, s.log, func(ev nestbox.CapsuleEvent) { s.metrics.observeEvent(ev, s.cfg.Now()) })
	})
	// Without a Holder the name only has to differ from other processes'
	// that might share a Redis stream.
	cfg := events.GroupConfig{Group: fallbackGroup, Consumer: cmp.Or(s.cfg.Holder, "cp-"+rand.Text()[:12]), ClaimIdle: s.cfg.EventClaimIdle}
	var backoff time.Duration
	for ctx.Err() == nil {
		err := s.ev.Consume(ctx, cfg, s.applyEvent)
		if err == nil || ctx.Err() != nil {
			return
		}
		backoff = min(max(2*backoff, 100*time.Millisecond), 10*time.Second)
		s.log.Warn("consume capsule events; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
}

// applyEvent is the fallback writer's handler: nil means the event needs
// nothing more (applied, or already there, or not a change to apply), an
// error that it should be tried again.
func (s *Service) applyEvent(ctx context.Context, ev nestbox.CapsuleEvent) error {
	if ev.From == "" || ev.To == "" || !capsulestate.Allowed(ev.From, ev.To) {
		return nil // a first event, or not a change of the machine
	}
	_, err := s.store.UpdateCapsuleStatus(ctx, ev.CapsuleID, []nestbox.Status{ev.From}, updateOf(ev))
	switch {
	case err == nil, errors.Is(err, errdefs.ErrConflict), errors.Is(err, errdefs.ErrNotFound):
		return nil
	case ctx.Err() != nil:
		return err
	case !ev.At.IsZero() && s.cfg.Now().Sub(ev.At) > fallbackGiveUp:
		s.log.Warn("give up applying capsule event: the reconcile resolves it", "capsule", ev.CapsuleID, "to", ev.To, "err", err)
		return nil
	}
	s.log.Warn("apply capsule event; retrying later", "capsule", ev.CapsuleID, "to", ev.To, "err", err)
	return err
}
