package lifecycle_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/store"
)

// TestReconcileDuringCreates runs creates concurrently with reconcile
// passes, many times over: no capsule that its create made healthy may be
// marked lost or destroyed by a pass that raced with it. A reconciler that
// lists the host before reading the store fails this: a create completing
// between the two reads looks like a running capsule the host lost.
func TestReconcileDuringCreates(t *testing.T) {
	iterations := 100
	if testing.Short() {
		iterations = 20
	}
	f := newFixture(t, unlimited)
	ctx := context.Background()
	var ids []string
	for range iterations {
		var wg sync.WaitGroup
		done := make(chan struct{})
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := f.svc.Reconcile(ctx); err != nil {
					t.Errorf("reconcile: %v", err)
					return
				}
			}
		})
		var cwg sync.WaitGroup
		batch := make([]string, 4)
		for i := range batch {
			cwg.Go(func() {
				c, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{})
				if err != nil {
					t.Errorf("create: %v", err)
					return
				}
				batch[i] = c.ID
			})
		}
		cwg.Wait()
		for _, id := range batch {
			if id != "" {
				f.settle(t, id, nestbox.StatusRunning)
			}
		}
		close(done)
		wg.Wait()
		ids = append(ids, batch...)
		if t.Failed() {
			break
		}
	}
	// One more pass after everything settled must not touch them either.
	if err := f.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		c, err := f.store.GetCapsule(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status != nestbox.StatusRunning || !f.agent.Has(id) {
			t.Fatalf("capsule %s: status %s (%s), on the host %v; want running and there. History: %v",
				id, c.Status, c.Error, f.agent.Has(id), statuses(t, f.store, id))
		}
	}
	list, err := f.svc.List(ctx, team, store.CapsuleFilter{Statuses: []nestbox.Status{nestbox.StatusError}})
	if err != nil || len(list.Capsules) != 0 {
		t.Fatalf("capsules in error: %d, %v", len(list.Capsules), err)
	}
}

// TestReconcileCreateBetweenReads pins the race down: a create held at the
// host is released while a reconcile pass is between the host's answer
// and its next step, and finishes (recorded running) before the pass goes
// on. The pass must leave the capsule running and on the host.
func TestReconcileCreateBetweenReads(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.agent.Gate = make(chan struct{})
	var c nestbox.Capsule
	f.agent.OnList = func() {
		close(f.agent.Gate)
		f.settle(t, c.ID, nestbox.StatusRunning)
		// Let the create's goroutine end too, so that the capsule is no
		// longer in flight. (Ordering only: if it is not over yet, the
		// test checks less, it does not fail.)
		time.Sleep(50 * time.Millisecond)
	}
	c, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	f.agent.OnList = nil
	got, err := f.store.GetCapsule(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != nestbox.StatusRunning || !f.agent.Has(c.ID) {
		t.Fatalf("capsule %s: %s (%s), on the host %v; want running and there", c.ID, got.Status, got.Error, f.agent.Has(c.ID))
	}
}
