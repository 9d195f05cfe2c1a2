package lifecycle

import (
	"context"
	"errors"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// How record retries a write the store refused as unavailable.
const (
	recordFirstBackoff = 100 * time.Millisecond
	recordMaxBackoff   = 2 * time.Second
	recordPatience     = time.Minute
)

// record is transition for the outcome of background work on a host (a
// create, a pause, a destroy): the host did the work, so its outcome is
// worth waiting for a store that is briefly unavailable (a database that
// restarts). It retries with backoff for up to a minute, or until the
// Service closes; what it could not write is left to the event stream's
// consumer (transition published it) and the reconcile. Any other error
// ends it at once.
//
// A retry that meets a conflict checks whether the capsule has the
// outcome already: an earlier attempt's event, applied by a consumer once
// the store was back, wrote it, and that is a success, not someone
// else's change.
func (s *Service) record(ctx context.Context, id string, from []nestbox.Status, u store.StatusUpdate) (store.Capsule, error) {
	deadline := time.Now().Add(recordPatience)
	backoff := recordFirstBackoff
	for attempt := 1; ; attempt++ {
		c, err := s.transition(ctx, id, from, u)
		switch {
		case err == nil:
			return c, nil
		case attempt > 1 && errors.Is(err, errdefs.ErrConflict) && c.Status == u.To:
			return c, nil
		case !errors.Is(err, errdefs.ErrUnavailable) || time.Now().Add(backoff).After(deadline):
			return c, err
		}
		if attempt == 1 {
			s.log.Warn("record capsule status: the store is unavailable; retrying", "capsule", id, "to", u.To, "err", err)
		}
		select {
		case <-s.ctx.Done():
			return c, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, recordMaxBackoff)
	}
}
