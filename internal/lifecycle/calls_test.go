package lifecycle_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	. "nestbox.dev/internal/lifecycle"
)

// TestAgentCallDeadlines: an agent that accepts calls but never answers
// cannot hold the control plane up. Queries (the reconciler's list, the
// template check of a create, set timeout) end at QueryTimeout with
// ErrDeadlineExceeded; a create that the host holds ends at CreateTimeout
// and the capsule becomes error. (The test's own deadline is what fails if
// a call has none.)
func TestAgentCallDeadlines(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.QueryTimeout, c.CreateTimeout, c.DestroyTimeout = time.Second, 2*time.Second, time.Second
	})
	ctx := context.Background()
	running, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	f.settle(t, running.ID, nestbox.StatusRunning)

	f.agent.SetHung(true)
	if err := f.svc.Reconcile(ctx); !errors.Is(err, errdefs.ErrDeadlineExceeded) {
		t.Errorf("reconcile against a hung agent: %v, want deadline exceeded", err)
	}
	if _, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{}); !errors.Is(err, errdefs.ErrDeadlineExceeded) {
		t.Errorf("create against a hung agent: %v, want deadline exceeded", err)
	}
	if _, err := f.svc.SetTimeout(ctx, team, running.ID, time.Minute); !errors.Is(err, errdefs.ErrDeadlineExceeded) {
		t.Errorf("set timeout against a hung agent: %v, want deadline exceeded", err)
	}
	if _, err := f.svc.Metrics(ctx, team, running.ID); !errors.Is(err, errdefs.ErrDeadlineExceeded) {
		t.Errorf("metrics against a hung agent: %v, want deadline exceeded", err)
	}
	f.agent.SetHung(false)

	// A create the host holds forever.
	f.agent.Gate = make(chan struct{})
	c, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := f.settle(t, c.ID, nestbox.StatusError)
	t.Logf("held create: %s", got.Error)
}
