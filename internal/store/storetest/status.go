package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// racers is how many goroutines race for one capsule.
const racers = 50

func testStatusUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	c := capsule("c1", "t1", at(0))
	c.Metadata = map[string]string{"keep": "me"}
	create(t, s, c)

	want := c
	wantEvents := []nestbox.CapsuleEvent{{CapsuleID: "c1", To: nestbox.StatusStarting, At: at(0)}}
	for _, step := range []struct {
		from  []nestbox.Status
		u     store.StatusUpdate
		apply func(c *store.Capsule)
	}{{
		from: []nestbox.Status{nestbox.StatusStarting},
		u: store.StatusUpdate{To: nestbox.StatusRunning, Reason: "created", HostID: "h1", EnvdVersion: "0.1.0",
			StartedAt: at(1), ExpiresAt: at(6), At: at(1)},
		apply: func(c *store.Capsule) {
			c.HostID, c.EnvdVersion, c.StartedAt, c.ExpiresAt = "h1", "0.1.0", ptr(at(1)), ptr(at(6))
		},
	}, {
		// Zero fields leave their columns: HostID, EnvdVersion and the
		// times stay as the first step set them.
		from:  []nestbox.Status{nestbox.StatusStarting, nestbox.StatusRunning},
		u:     store.StatusUpdate{To: nestbox.StatusStopping, Reason: "destroy requested", At: at(2)},
		apply: func(c *store.Capsule) {},
	}, {
		// To error: the reason is the capsule's Error too.
		from:  []nestbox.Status{nestbox.StatusStopping},
		u:     store.StatusUpdate{To: nestbox.StatusError, Reason: "boom", StoppedAt: at(3), At: at(3)},
		apply: func(c *store.Capsule) { c.Error, c.StoppedAt = "boom", ptr(at(3)) },
	}} {
		wantEvents = append(wantEvents, nestbox.CapsuleEvent{CapsuleID: "c1", From: want.Status, To: step.u.To, Reason: step.u.Reason, At: step.u.At})
		want.Status, want.UpdatedAt = step.u.To, step.u.At
		want.Generation++
		step.apply(&want)

		got, err := s.UpdateCapsuleStatus(ctx, "c1", step.from, step.u)
		if err != nil {
			t.Fatalf("UpdateCapsuleStatus(%v -> %s): %v", step.from, step.u.To, err)
		}
		if d := diff(got, want); d != "" {
			t.Errorf("UpdateCapsuleStatus(%v -> %s) returned %s", step.from, step.u.To, d)
		}
		if d := diff(get(t, s, "c1"), want); d != "" {
			t.Errorf("GetCapsule after UpdateCapsuleStatus(%v -> %s): %s", step.from, step.u.To, d)
		}
	}
	if d := diff(events(t, s, "c1"), wantEvents); d != "" {
		t.Errorf("CapsuleEvents: %s", d)
	}

	// A zero At is now.
	create(t, s, capsule("c2", "t1", at(0)))
	before := time.Now()
	got, err := s.UpdateCapsuleStatus(ctx, "c2", []nestbox.Status{nestbox.StatusStarting}, store.StatusUpdate{To: nestbox.StatusRunning})
	after := time.Now()
	if err != nil {
		t.Fatalf("UpdateCapsuleStatus without At: %v", err)
	}
	// A second of slack: a store may round to its precision.
	if got.UpdatedAt.Before(before.Add(-time.Second)) || got.UpdatedAt.After(after.Add(time.Second)) {
		t.Errorf("UpdatedAt without At = %v, want between %v and %v", got.UpdatedAt, before, after)
	}
	if evs := events(t, s, "c2"); len(evs) != 2 || !evs[1].At.Equal(got.UpdatedAt) {
		t.Errorf("CapsuleEvents(c2) = %v, want a second event at %v", evs, got.UpdatedAt)
	}
}

func testStatusConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	c := capsule("c1", "t1", at(0))
	c.Status = nestbox.StatusRunning
	create(t, s, c)
	for _, from := range [][]nestbox.Status{
		{nestbox.StatusStarting},
		{nestbox.StatusStarting, nestbox.StatusStopping},
	} {
		got, err := s.UpdateCapsuleStatus(ctx, "c1", from, store.StatusUpdate{To: nestbox.StatusStopped, Reason: "no", HostID: "h9", At: at(5)})
		if !errors.Is(err, errdefs.ErrConflict) {
			t.Errorf("UpdateCapsuleStatus(from %v) of a running capsule: %v, want ErrConflict", from, err)
		}
		// The conflict hands back the capsule as it is, to act on.
		if d := diff(got, c); d != "" {
			t.Errorf("UpdateCapsuleStatus(from %v) conflict returned %s", from, d)
		}
	}
	if d := diff(get(t, s, "c1"), c); d != "" {
		t.Errorf("GetCapsule after conflicts: %s", d)
	}
	if n := len(events(t, s, "c1")); n != 1 {
		t.Errorf("CapsuleEvents after conflicts: %d events, want 1", n)
	}
}

func testStatusRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	create(t, s, capsule("c1", "t1", at(0)))

	var (
		mu      sync.Mutex
		winners []string
	)
	var wg sync.WaitGroup
	for i := range racers {
		reason := fmt.Sprintf("racer %d", i)
		wg.Go(func() {
			got, err := s.UpdateCapsuleStatus(ctx, "c1", []nestbox.Status{nestbox.StatusStarting},
				store.StatusUpdate{To: nestbox.StatusRunning, Reason: reason})
			switch {
			case err == nil:
				mu.Lock()
				winners = append(winners, reason)
				mu.Unlock()
			case !errors.Is(err, errdefs.ErrConflict):
				t.Errorf("%s: %v, want nil or ErrConflict", reason, err)
			case got.Status != nestbox.StatusRunning:
				t.Errorf("%s lost but was handed a capsule in status %q, want running", reason, got.Status)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d of %d racers won (%v), want exactly 1", len(winners), racers, winners)
	}
	evs := events(t, s, "c1")
	if len(evs) != 2 || evs[1].Reason != winners[0] || evs[1].From != nestbox.StatusStarting {
		t.Errorf("CapsuleEvents = %v, want the creation and the change by %s", evs, winners[0])
	}
}

// testConcurrentWrites mixes inserts, compare-and-set updates and reads
// from many goroutines: none may fail (an SQLITE_BUSY, a serialization
// failure) other than by losing a compare-and-set.
func testConcurrentWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	create(t, s, capsule("shared", "t1", at(0)))

	var wg sync.WaitGroup
	wins := make([]bool, racers)
	for i := range racers {
		id := fmt.Sprintf("w%02d", i)
		wg.Go(func() {
			if err := s.CreateCapsule(ctx, capsule(id, "t1", at(1+i))); err != nil {
				t.Errorf("CreateCapsule(%s): %v", id, err)
				return
			}
			_, err := s.UpdateCapsuleStatus(ctx, "shared", []nestbox.Status{nestbox.StatusStarting}, store.StatusUpdate{To: nestbox.StatusRunning, Reason: id})
			wins[i] = err == nil
			if err != nil && !errors.Is(err, errdefs.ErrConflict) {
				t.Errorf("UpdateCapsuleStatus(shared) by %s: %v", id, err)
			}
			for _, st := range []nestbox.Status{nestbox.StatusRunning, nestbox.StatusStopping} {
				from := []nestbox.Status{nestbox.StatusStarting, nestbox.StatusRunning}
				if _, err := s.UpdateCapsuleStatus(ctx, id, from, store.StatusUpdate{To: st}); err != nil {
					t.Errorf("UpdateCapsuleStatus(%s -> %s): %v", id, st, err)
				}
			}
			if _, _, err := s.ListCapsules(ctx, store.CapsuleFilter{Limit: 10}); err != nil {
				t.Errorf("ListCapsules during writes: %v", err)
			}
		})
	}
	wg.Wait()

	n := 0
	for _, w := range wins {
		if w {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d goroutines moved the shared capsule, want exactly 1", n)
	}
	for i := range racers {
		id := fmt.Sprintf("w%02d", i)
		if evs := events(t, s, id); len(evs) != 3 || evs[2].To != nestbox.StatusStopping {
			t.Errorf("CapsuleEvents(%s) = %v, want created, running, stopping", id, evs)
		}
	}
	ids, _, err := listAll(ctx, s, store.CapsuleFilter{Limit: 7}, nil)
	if err != nil || len(ids) != racers+1 {
		t.Errorf("ListCapsules after the writes: %d capsules (err %v), want %d", len(ids), err, racers+1)
	}
}
