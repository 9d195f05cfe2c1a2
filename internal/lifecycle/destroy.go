package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/store"
)

// Destroy moves a capsule of team to StatusStopping and destroys it in the
// background. It is idempotent: a capsule already stopping, stopped or in
// error is returned as it is. A capsule still starting is stopped by its
// create as soon as the host answers.
func (s *Service) Destroy(ctx context.Context, teamID, id string) (nestbox.Capsule, error) {
	for attempt := 0; attempt < 10; attempt++ {
		c, err := s.get(ctx, teamID, id)
		if err != nil {
			return nestbox.Capsule{}, err
		}
		switch c.Status {
		case nestbox.StatusStopping, nestbox.StatusStopped, nestbox.StatusError:
			return c.Capsule, nil
		}
		from := c.Status
		c, err = s.transition(ctx, id, []nestbox.Status{from}, store.StatusUpdate{To: nestbox.StatusStopping, Reason: "destroy requested", Generation: c.Generation})
		if errors.Is(err, errdefs.ErrConflict) {
			continue // changed under us: look again
		}
		if err != nil {
			return nestbox.Capsule{}, err
		}
		if from == nestbox.StatusRunning || from == nestbox.StatusPaused || from == nestbox.StatusMissing {
			host, herr := s.hosts.Get(c.HostID)
			if herr != nil {
				return c.Capsule, nil // the reconciler resolves it
			}
			s.background(id, func(ctx context.Context) { s.finishDestroy(ctx, id, host) })
		}
		// From StatusStarting, StatusPausing or StatusResuming the
		// goroutine of that work finishes the job when the host answers;
		// if it no longer exists (a restart), the reconciler does.
		return c.Capsule, nil
	}
	return nestbox.Capsule{}, errdefs.Unavailable("capsule %s keeps changing; try again", id)
}

// finishDestroy destroys the sandbox on its host and moves the capsule from
// StatusStopping to StatusStopped. A host that does not answer is retried a
// few times; after that the capsule stays stopping for the reconciler.
func (s *Service) finishDestroy(ctx context.Context, id string, host Host) {
	log := s.log.With("capsule", id, "host", host.ID)
	start := time.Now()
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = s.destroyOnHost(ctx, host, id); err == nil {
			break
		}
		log.Warn("destroy failed", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			s.metrics.observeOp(opDestroy, start, err, true)
			return
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
	s.metrics.observeOp(opDestroy, start, err, false)
	if err != nil {
		return
	}
	_, err = s.record(ctx, id, []nestbox.Status{nestbox.StatusStopping}, store.StatusUpdate{To: nestbox.StatusStopped, StoppedAt: s.cfg.Now().UTC()})
	if err != nil && !errors.Is(err, errdefs.ErrConflict) {
		log.Error("record stopped capsule", "err", err)
	}
}

// destroyOnHost asks a host to destroy a sandbox; an unknown one is fine.
func (s *Service) destroyOnHost(ctx context.Context, host Host, id string) error {
	ctx, cancel := s.callContext(ctx, callDestroy)
	defer cancel()
	_, err := host.Agent.DestroySandbox(ctx, connect.NewRequest(&agentpb.DestroySandboxRequest{Id: id}))
	if err = errdefs.FromConnect(err); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("destroy sandbox %s on host %s: %w", id, host.ID, err)
	}
	return nil
}
