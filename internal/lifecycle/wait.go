package lifecycle

import (
	"context"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/capsulestate"
)

// waitPoll is how often Wait re-reads the store besides listening to
// events: a safety net for an event lost on the way.
const waitPoll = time.Second

// Wait blocks until a capsule of team reaches status want, or a final
// status it cannot leave, or ctx is done; it returns the capsule as it is
// then. Only an unknown capsule or a failing store is an error: the caller
// compares the status.
func (s *Service) Wait(ctx context.Context, teamID, id string, want nestbox.Status) (nestbox.Capsule, error) {
	return s.waitUntil(ctx, teamID, id, func(st nestbox.Status) bool { return st == want || st.Final() })
}

// waitUntil blocks until done accepts the status of a capsule of team, or
// ctx is done, and returns the capsule as it is then.
func (s *Service) waitUntil(ctx context.Context, teamID, id string, done func(nestbox.Status) bool) (nestbox.Capsule, error) {
	// Subscribe before the first read so that no change slips between.
	sub, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.ev.Subscribe(sub)
	if err != nil {
		ch = nil // poll only
	}
	t := time.NewTicker(waitPoll)
	defer t.Stop()
	for {
		c, err := s.get(context.WithoutCancel(ctx), teamID, id)
		if err != nil {
			return nestbox.Capsule{}, err
		}
		if done(c.Status) || ctx.Err() != nil {
			return c.Capsule, nil
		}
	next:
		for {
			select {
			case <-ctx.Done():
				break next
			case <-t.C:
				break next
			case ev, ok := <-ch:
				if !ok {
					ch = nil
					continue
				}
				if ev.CapsuleID == id || ev.To == "" {
					break next
				}
			}
		}
	}
}

// WaitSettled blocks until a capsule of team is in a status that is not
// transient (its pause, resume, create or destroy ended, however it ended),
// or ctx is done, and returns it as it is then.
func (s *Service) WaitSettled(ctx context.Context, teamID, id string) (nestbox.Capsule, error) {
	return s.waitUntil(ctx, teamID, id, func(st nestbox.Status) bool { return !capsulestate.Transient(st) })
}
