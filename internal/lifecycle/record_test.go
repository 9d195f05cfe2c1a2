package lifecycle_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	. "nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/store"
)

// outageStore refuses status changes while down is set, as a database
// that restarts would.
type outageStore struct {
	store.Store
	down    atomic.Bool
	refused atomic.Int32
}

func (s *outageStore) UpdateCapsuleStatus(ctx context.Context, id string, from []nestbox.Status, u store.StatusUpdate) (store.Capsule, error) {
	if s.down.Load() {
		s.refused.Add(1)
		return store.Capsule{}, errdefs.Unavailable("the database is restarting")
	}
	return s.Store.UpdateCapsuleStatus(ctx, id, from, u)
}

// TestOutcomeWaitsForTheStore checks that a create whose host answered
// while the store refused writes records running once the store is back,
// seconds later, although the event stream's consumer already tried (and
// failed) to apply it and the periodic reconcile is an hour away.
func TestOutcomeWaitsForTheStore(t *testing.T) {
	st := &outageStore{}
	f := newFixture(t, func(c *Config) { st.Store = c.Store; c.Store = st; c.ReconcileInterval = time.Hour })
	runService(t, f)
	ctx := context.Background()
	outage := func(what string, do func()) {
		t.Helper()
		st.refused.Store(0)
		st.down.Store(true)
		do()
		// The background work's write and the consumer's application of
		// its event are both refused.
		for deadline := time.Now().Add(10 * time.Second); st.refused.Load() < 2; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d writes refused in 10 s, want the outcome's and the consumer's", what, st.refused.Load())
			}
		}
		st.down.Store(false)
	}
	var id string
	outage("create", func() {
		c, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{Template: "base"})
		if err != nil {
			t.Fatal(err)
		}
		id = c.ID
	})
	f.settle(t, id, nestbox.StatusRunning)
}
