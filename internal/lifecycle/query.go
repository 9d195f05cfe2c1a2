package lifecycle

import (
	"context"
	"errors"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// Get returns a capsule of team. A capsule of another team is not found:
// its existence is not revealed.
func (s *Service) Get(ctx context.Context, teamID, id string) (nestbox.Capsule, error) {
	c, err := s.get(ctx, teamID, id)
	return c.Capsule, err
}

// Lookup returns the full record of a capsule of team, with its access
// token, for the layers that talk to its envd.
func (s *Service) Lookup(ctx context.Context, teamID, id string) (store.Capsule, error) {
	return s.get(ctx, teamID, id)
}

func (s *Service) get(ctx context.Context, teamID, id string) (store.Capsule, error) {
	if len(id) != capsulespec.IDLength {
		return store.Capsule{}, errdefs.NotFound("capsule %q not found", id)
	}
	c, err := s.store.GetCapsule(ctx, id)
	if errors.Is(err, errdefs.ErrNotFound) || (err == nil && c.TeamID != teamID) {
		return store.Capsule{}, errdefs.NotFound("capsule %s not found", id)
	}
	return c, err
}

// List returns a page of a team's capsules.
func (s *Service) List(ctx context.Context, teamID string, f store.CapsuleFilter) (nestbox.CapsuleList, error) {
	f.TeamID = teamID
	cs, next, err := s.store.ListCapsules(ctx, f)
	if err != nil {
		return nestbox.CapsuleList{}, err
	}
	out := nestbox.CapsuleList{Capsules: make([]nestbox.Capsule, len(cs)), NextCursor: next}
	for i, c := range cs {
		out.Capsules[i] = c.Capsule
	}
	return out, nil
}

// Events lists a capsule's status history.
func (s *Service) Events(ctx context.Context, teamID, id string) ([]nestbox.CapsuleEvent, error) {
	if _, err := s.get(ctx, teamID, id); err != nil {
		return nil, err
	}
	return s.store.CapsuleEvents(ctx, id)
}

// Running returns a capsule of team that is running, with its host, for
// exec, files, PTY and the port proxy: a paused capsule created with
// auto-resume is resumed first, and a transient one waited for, as
// EnsureRunning does. Any other status is errdefs.ErrConflict (ErrPaused
// for a paused capsule without auto-resume), an unknown one ErrNotFound.
func (s *Service) Running(ctx context.Context, teamID, id string) (store.Capsule, Host, error) {
	c, err := s.get(ctx, teamID, id)
	if err != nil {
		return c, Host{}, err
	}
	return s.ensureRunning(ctx, c)
}

// runningNow is Running without resuming or waiting: for calls that are
// about the running sandbox itself (its timeout, its metrics).
func (s *Service) runningNow(ctx context.Context, teamID, id string) (store.Capsule, Host, error) {
	c, err := s.get(ctx, teamID, id)
	if err != nil {
		return c, Host{}, err
	}
	if c.Status != nestbox.StatusRunning {
		return c, Host{}, errdefs.Conflict("capsule %s is %s, not running", id, c.Status)
	}
	return s.withHost(c)
}

// withHost returns c with the host it runs on.
func (s *Service) withHost(c store.Capsule) (store.Capsule, Host, error) {
	h, err := s.hosts.Get(c.HostID)
	if err != nil {
		return c, Host{}, errdefs.Unavailable("host %s of capsule %s: %v", c.HostID, c.ID, err)
	}
	return c, h, nil
}

// Route returns a running capsule and its host whatever its team: for
// traffic addressed to a capsule by ID (E2B's routing headers, host names,
// signed URLs), which envd or the capsule's own server authorises. It is
// EnsureRunning: a paused capsule with auto-resume is resumed and waited
// for; one without is ErrPaused; any other status errdefs.ErrNotFound.
//
// allow, if not nil, is asked about the capsule before anything is
// resumed (see EnsureRunningIf); its error is returned as it is.
func (s *Service) Route(ctx context.Context, id string, allow func(store.Capsule) error) (store.Capsule, Host, error) {
	c, h, err := s.EnsureRunningIf(ctx, id, allow)
	if err != nil && !errors.Is(err, ErrPaused) && errors.Is(err, errdefs.ErrConflict) {
		return c, Host{}, errdefs.NotFound("sandbox %s is %s", id, c.Status)
	}
	return c, h, err
}

// EachRunning calls fn for every running capsule of every team until fn
// returns false.
func (s *Service) EachRunning(ctx context.Context, fn func(store.Capsule) bool) error {
	f := store.CapsuleFilter{Statuses: []nestbox.Status{nestbox.StatusRunning}, Limit: 1000}
	for {
		cs, next, err := s.store.ListCapsules(ctx, f)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if !fn(c) {
				return nil
			}
		}
		if next == "" {
			return nil
		}
		f.Cursor = next
	}
}
