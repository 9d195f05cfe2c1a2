package lifecycle

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
)

// SetTimeout gives a running capsule of team d more life from now. It
// cannot take the capsule past CreatedAt + Config.MaxLifetime: a longer d
// is errdefs.ErrInvalid and changes nothing.
func (s *Service) SetTimeout(ctx context.Context, teamID, id string, d time.Duration) (nestbox.Capsule, error) {
	if d < time.Second || d > s.cfg.MaxLifetime {
		return nestbox.Capsule{}, errdefs.Invalid("timeout_seconds %d: want 1 to %d", int(d/time.Second), int(s.cfg.MaxLifetime/time.Second))
	}
	c, host, err := s.runningNow(ctx, teamID, id)
	if err != nil {
		return c.Capsule, err
	}
	if limit := c.CreatedAt.Add(s.cfg.MaxLifetime); s.cfg.Now().Add(d).After(limit) {
		left := max(limit.Sub(s.cfg.Now()), 0)
		return c.Capsule, errdefs.Invalid("timeout_seconds %d: capsule %s may live until %s (%s after its creation), at most %d s more",
			int(d/time.Second), id, limit.UTC().Format(time.RFC3339), s.cfg.MaxLifetime, int(left/time.Second))
	}
	cctx, cancel := s.callContext(ctx, callQuery)
	defer cancel()
	resp, err := host.Agent.SetTimeout(cctx, connect.NewRequest(&agentpb.SetTimeoutRequest{Id: id, TimeoutSeconds: uint32(d / time.Second)}))
	if err != nil {
		return c.Capsule, fmt.Errorf("set timeout of capsule %s: %w", id, errdefs.FromConnect(err))
	}
	end := resp.Msg.GetEndAt().AsTime().UTC()
	if err := s.store.SetCapsuleExpiry(ctx, id, end); err != nil {
		return c.Capsule, err
	}
	c.ExpiresAt = &end
	return c.Capsule, nil
}

// Metrics samples a running capsule's resource use.
func (s *Service) Metrics(ctx context.Context, teamID, id string) (nestbox.Metrics, error) {
	m, _, err := s.MetricsRange(ctx, teamID, id, time.Time{}, time.Time{})
	return m, err
}
