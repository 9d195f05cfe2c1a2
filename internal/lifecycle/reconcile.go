package lifecycle

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/capsulestate"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/store"
)

// Reconcile compares every host's sandboxes with the store and repairs the
// difference:
//   - a capsule the host no longer runs becomes stopped (its time was up)
//     or error;
//   - a capsule stuck in a transient status with no work in flight is
//     resolved by asking the host; one whose status was set before this
//     Service started (a restarted control plane) is stuck at once;
//   - a sandbox the store does not know, or knows as gone, is destroyed;
//   - its snapshots are compared too (reconcileSnapshots).
//
// A host that does not answer is skipped until the next round.
//
// Consistency with concurrent creates holds by construction: the store is
// read before the host is asked, so every capsule the pass acts on was
// recorded before the host's answer was made. A capsule recorded running
// had its sandbox before that (the create answers first, the store is
// written after), so a list without it means the sandbox is gone; and even
// then the pass asks the host again for that one capsule (GetSandbox)
// before declaring it lost. Each repair is a compare-and-set from the
// status that was read, so a change made meanwhile wins.
func (s *Service) Reconcile(ctx context.Context) error {
	var errs []error
	for _, h := range s.hosts.All() {
		err := s.reconcileHost(ctx, h)
		if ctx.Err() == nil {
			s.metrics.observeReconcile(h.ID, err)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("host %s: %w", h.ID, err))
		} else if serr := s.reconcileSnapshots(ctx, h); serr != nil {
			errs = append(errs, fmt.Errorf("host %s: %w", h.ID, serr))
		}
		if silent := s.countSilence(h.ID, err); silent == s.cfg.MissingAfter {
			if err := s.markMissing(ctx, h); err != nil {
				errs = append(errs, fmt.Errorf("host %s: %w", h.ID, err))
			}
		}
	}
	return errors.Join(errs...)
}

// countSilence counts the reconcile passes in a row that could not list
// host id's sandboxes (err is the pass's error) and returns the count.
func (s *Service) countSilence(id string, err error) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cerr *listError
	if err == nil || !errors.As(err, &cerr) {
		delete(s.silent, id)
		return 0
	}
	s.silent[id]++
	return s.silent[id]
}

// listError is a host that did not answer its list.
type listError struct{ err error }

func (e *listError) Error() string { return "list sandboxes: " + e.err.Error() }
func (e *listError) Unwrap() error { return e.err }

// markMissing moves the running and paused capsules of a host that has
// not answered Config.MissingAfter passes in a row to StatusMissing: they
// may still run there, nobody can tell. The first pass that hears from
// the host again resolves them.
func (s *Service) markMissing(ctx context.Context, h Host) error {
	return s.markMissingBecause(ctx, h, fmt.Sprintf("host %s has not answered %d reconcile passes", h.ID, s.cfg.MissingAfter))
}

// markMissingBecause moves the host's running and paused capsules that no
// work is in flight for to StatusMissing, with reason.
func (s *Service) markMissingBecause(ctx context.Context, h Host, reason string) error {
	f := store.CapsuleFilter{HostID: h.ID, Statuses: []nestbox.Status{nestbox.StatusRunning, nestbox.StatusPaused}, Limit: 1000}
	var errs []error
	for {
		cs, next, err := s.store.ListCapsules(ctx, f)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if s.isInflight(c.ID) {
				continue
			}
			_, err := s.transition(ctx, c.ID, []nestbox.Status{c.Status}, store.StatusUpdate{
				To: nestbox.StatusMissing, Reason: reason, Generation: c.Generation,
			})
			switch {
			case err == nil:
				s.log.Warn("capsule missing: its host does not answer", "capsule", c.ID, "host", h.ID, "from", c.Status)
				s.metrics.repairs.WithLabelValues(string(c.Status), string(nestbox.StatusMissing)).Inc()
			case !errors.Is(err, errdefs.ErrConflict):
				errs = append(errs, err)
			}
		}
		if next == "" {
			return errors.Join(errs...)
		}
		f.Cursor = next
	}
}

func (s *Service) reconcileHost(ctx context.Context, h Host) error {
	var live []store.Capsule
	f := store.CapsuleFilter{HostID: h.ID, Statuses: capsulestate.LiveStatuses(), Limit: 1000}
	for {
		cs, next, err := s.store.ListCapsules(ctx, f)
		if err != nil {
			return err
		}
		live = append(live, cs...)
		if next == "" {
			break
		}
		f.Cursor = next
	}
	lctx, cancel := s.callContext(ctx, callQuery)
	resp, err := h.Agent.ListSandboxes(lctx, connect.NewRequest(&agentpb.ListSandboxesRequest{}))
	cancel()
	if err != nil {
		return &listError{errdefs.FromConnect(err)}
	}
	onHost := map[string]bool{}
	state := map[string]agentpb.SandboxState{}
	for _, sb := range resp.Msg.GetSandboxes() {
		onHost[sb.GetId()] = sb.GetState() == agentpb.SandboxState_SANDBOX_STATE_RUNNING
		state[sb.GetId()] = sb.GetState()
	}
	known := map[string]bool{}
	var errs []error
	for _, c := range live {
		known[c.ID] = true
		if err := s.reconcileCapsule(ctx, h, c, onHost, state[c.ID]); err != nil {
			errs = append(errs, err)
		}
	}
	for id := range onHost {
		if known[id] || s.isInflight(id) {
			continue
		}
		// Re-check: the capsule may have been created since the store
		// was read.
		c, err := s.store.GetCapsule(ctx, id)
		if err == nil && !c.Status.Final() {
			continue
		}
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		s.log.Info("reconcile: destroying a sandbox the store has no live capsule for", "capsule", id, "host", h.ID)
		if err := s.destroyOnHost(ctx, h, id); err != nil {
			errs = append(errs, err)
			continue
		}
		s.metrics.orphans.WithLabelValues(h.ID).Inc()
	}
	return errors.Join(errs...)
}

// confirmGone asks the host about one sandbox that its list left out, and
// reports whether the host really does not run it.
func (s *Service) confirmGone(ctx context.Context, h Host, id string) (bool, error) {
	ctx, cancel := s.callContext(ctx, callQuery)
	defer cancel()
	resp, err := h.Agent.GetSandbox(ctx, connect.NewRequest(&agentpb.GetSandboxRequest{Id: id}))
	if err = errdefs.FromConnect(err); errors.Is(err, errdefs.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("get sandbox %s on host %s: %w", id, h.ID, err)
	}
	return resp.Msg.GetSandbox().GetState() != agentpb.SandboxState_SANDBOX_STATE_RUNNING, nil
}

func (s *Service) reconcileCapsule(ctx context.Context, h Host, c store.Capsule, onHost map[string]bool, st agentpb.SandboxState) error {
	if s.isInflight(c.ID) {
		return nil
	}
	running, present := onHost[c.ID]
	now := s.cfg.Now().UTC()
	// A transient status set before this Service started belongs to work
	// of a process that is gone: nothing will finish it.
	stuck := now.Sub(c.UpdatedAt) > s.cfg.StuckAfter || c.UpdatedAt.Before(s.started)
	if s.cfg.Holder != "" && now.Sub(c.UpdatedAt) > 3*s.cfg.TouchInterval {
		// Whichever replica drives it would have touched it (touch.go).
		stuck = true
	}
	var u store.StatusUpdate
	switch c.Status {
	case nestbox.StatusRunning:
		if running {
			return nil
		}
		if st == agentpb.SandboxState_SANDBOX_STATE_PAUSED {
			// Auto-paused at its timeout, and the event was lost.
			u = store.StatusUpdate{To: nestbox.StatusPaused, Reason: "found paused by the reconciler", Pause: &store.Pause{At: now, Memory: c.AutoPauseMemory}}
			break
		}
		gone, err := s.confirmGone(ctx, h, c.ID)
		if err != nil || !gone {
			return err
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
				if err := s.destroyOnHost(ctx, h, c.ID); err != nil {
					return err
				}
			}
		}
	case nestbox.StatusPaused:
		if st == agentpb.SandboxState_SANDBOX_STATE_PAUSED {
			return nil // a paused sandbox the agent lists is fine
		}
		if present {
			return nil // running without a resume: a host event or the next pass tells
		}
		gone, err := s.confirmGone(ctx, h, c.ID)
		if err != nil || !gone {
			return err
		}
		if sb, gerr := s.getSandbox(ctx, h, c.ID); gerr == nil && sb.GetState() == agentpb.SandboxState_SANDBOX_STATE_PAUSED {
			return nil
		}
		u = store.StatusUpdate{To: nestbox.StatusError, Reason: "the host no longer has this paused sandbox", StoppedAt: now}
	case nestbox.StatusPausing, nestbox.StatusResuming:
		if !stuck {
			return nil
		}
		switch {
		case st == agentpb.SandboxState_SANDBOX_STATE_PAUSED:
			u = store.StatusUpdate{To: nestbox.StatusPaused, Reason: "found paused by the reconciler"}
			if c.Status == nestbox.StatusPausing {
				u.Pause = &store.Pause{At: now, Memory: true}
			}
		case running:
			u = store.StatusUpdate{To: nestbox.StatusRunning, Reason: "found running by the reconciler"}
		default:
			u = store.StatusUpdate{To: nestbox.StatusError, Reason: map[nestbox.Status]string{nestbox.StatusPausing: "the pause", nestbox.StatusResuming: "the resume"}[c.Status] + " did not finish and the host has no sandbox", StoppedAt: now}
		}
	case nestbox.StatusMissing:
		switch {
		case st == agentpb.SandboxState_SANDBOX_STATE_PAUSED:
			u = store.StatusUpdate{To: nestbox.StatusPaused, Reason: "its host answers again"}
		case running:
			u = store.StatusUpdate{To: nestbox.StatusRunning, Reason: "its host answers again"}
		default:
			u = store.StatusUpdate{To: nestbox.StatusError, Reason: "its host answers again without the sandbox", StoppedAt: now}
		}
	case nestbox.StatusStopping:
		if present {
			if err := s.destroyOnHost(ctx, h, c.ID); err != nil {
				return err
			}
		}
		u = store.StatusUpdate{To: nestbox.StatusStopped, StoppedAt: now}
	default:
		return nil
	}
	s.log.Info("reconcile", "capsule", c.ID, "host", h.ID, "from", c.Status, "to", u.To, "reason", u.Reason)
	u.Generation = c.Generation
	_, err := s.transition(ctx, c.ID, []nestbox.Status{c.Status}, u)
	switch {
	case err == nil:
		s.metrics.repairs.WithLabelValues(string(c.Status), string(u.To)).Inc()
	case errors.Is(err, errdefs.ErrConflict):
		return nil
	}
	return err
}
