package lifecycle

import (
	"context"
	"fmt"

	"nestbox.dev/internal/errdefs"
)

// ErrNoCapacity is the kind of error a create gets when no host has room
// for it (with errdefs.ErrUnavailable): the HTTP layer answers 503 with
// the stable code "no_capacity" and Retry-After. Nothing was created.
var ErrNoCapacity = errdefs.Unavailable("no capacity")

// HostUnreachable marks the running and paused capsules of a host whose
// heartbeats stopped missing: they may still run there, nobody can tell.
// The reconcile that follows the host's next heartbeat resolves them.
func (s *Service) HostUnreachable(ctx context.Context, hostID string) error {
	h, err := s.hosts.Get(hostID)
	if err != nil {
		return fmt.Errorf("host %s unreachable: %w", hostID, err)
	}
	return s.markMissingBecause(ctx, h, fmt.Sprintf("host %s stopped sending heartbeats", hostID))
}

// ReconcileHostSoon reconciles one host in the background, under the
// service's context: a host heard from again after it was unreachable has
// its missing capsules resolved in seconds instead of at the next pass.
func (s *Service) ReconcileHostSoon(hostID string) {
	s.bg.Go(func() {
		h, err := s.hosts.Get(hostID)
		if err == nil {
			err = s.reconcileHost(s.ctx, h)
		}
		if err != nil && s.ctx.Err() == nil {
			s.log.Warn("reconcile a host that is back", "host", hostID, "err", err)
		}
	})
}
