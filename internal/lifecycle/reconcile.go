package lifecycle

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/store"
)

// Reconcile compares every host's sandboxes with the store and repairs the
// difference:
//   - a capsule the host no longer runs becomes stopped (its time was up)
//     or error;
//   - a capsule stuck in a transient status with no work in flight is
//     resolved by asking the host;
//   - a sandbox the store does not know, or knows as gone, is destroyed.
//
// A host that does not answer is skipped until the next round.
func (s *Service) Reconcile(ctx context.Context) error {
	var errs []error
	for _, h := range s.hosts.All() {
		if err := s.reconcileHost(ctx, h); err != nil {
			errs = append(errs, fmt.Errorf("host %s: %w", h.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Service) reconcileHost(ctx context.Context, h Host) error {
	resp, err := h.Agent.ListSandboxes(ctx, connect.NewRequest(&agentpb.ListSandboxesRequest{}))
	if err != nil {
		return fmt.Errorf("list sandboxes: %w", errdefs.FromConnect(err))
	}
	onHost := map[string]bool{}
	for _, sb := range resp.Msg.GetSandboxes() {
		onHost[sb.GetId()] = sb.GetState() == agentpb.SandboxState_SANDBOX_STATE_RUNNING
	}
	known := map[string]bool{}
	var errs []error
	f := store.CapsuleFilter{HostID: h.ID, Statuses: []nestbox.Status{nestbox.StatusStarting, nestbox.StatusRunning, nestbox.StatusStopping}, Limit: 1000}
	for {
		cs, next, err := s.store.ListCapsules(ctx, f)
		if err != nil {
			return err
		}
		for _, c := range cs {
			known[c.ID] = true
			if err := s.reconcileCapsule(ctx, h, c, onHost); err != nil {
				errs = append(errs, err)
			}
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	for id := range onHost {
		if known[id] || s.isInflight(id) {
			continue
		}
		// Re-check: the capsule may have been created since the list.
		c, err := s.store.GetCapsule(ctx, id)
		if err == nil && !c.Status.Final() {
			continue
		}
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		s.log.Info("reconcile: destroying a sandbox the store has no live capsule for", "sandbox", id, "host", h.ID)
		if err := destroyOnHost(ctx, h, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) reconcileCapsule(ctx context.Context, h Host, c store.Capsule, onHost map[string]bool) error {
	if s.isInflight(c.ID) {
		return nil
	}
	running, present := onHost[c.ID]
	now := s.cfg.Now().UTC()
	stuck := now.Sub(c.UpdatedAt) > s.cfg.StuckAfter
	var u store.StatusUpdate
	switch c.Status {
	case nestbox.StatusRunning:
		if running {
			return nil
		}
		// The host lost it. If its time was up, that was the timeout.
		u = store.StatusUpdate{To: nestbox.StatusError, Reason: "the host no longer has this sandbox", StoppedAt: now}
		if c.ExpiresAt != nil && !now.Before(*c.ExpiresAt) {
			u = store.StatusUpdate{To: nestbox.StatusStopped, Reason: "timed out", StoppedAt: now}
		}
	case nestbox.StatusStarting:
		if !stuck {
			return nil
		}
		if running {
			u = store.StatusUpdate{To: nestbox.StatusRunning, Reason: "found running by the reconciler", StartedAt: now}
		} else {
			u = store.StatusUpdate{To: nestbox.StatusError, Reason: "the create did not finish", StoppedAt: now}
			if present {
				if err := destroyOnHost(ctx, h, c.ID); err != nil {
					return err
				}
			}
		}
	case nestbox.StatusStopping:
		if present {
			if err := destroyOnHost(ctx, h, c.ID); err != nil {
				return err
			}
		}
		u = store.StatusUpdate{To: nestbox.StatusStopped, StoppedAt: now}
	default:
		return nil
	}
	s.log.Info("reconcile", "capsule", c.ID, "from", c.Status, "to", u.To, "reason", u.Reason)
	_, err := s.transition(ctx, c.ID, []nestbox.Status{c.Status}, u)
	if errors.Is(err, errdefs.ErrConflict) {
		return nil
	}
	return err
}
