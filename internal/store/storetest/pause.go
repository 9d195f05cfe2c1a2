package storetest

import (
	"errors"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// testPauseFields round-trips the create options of pause and resume and
// what a change to paused records.
func testPauseFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	c := capsule("c1", "t1", at(0))
	c.AutoPause, c.AutoPauseMemory, c.AutoResume = true, false, true
	create(t, s, c)
	if d := diff(get(t, s, "c1"), c); d != "" {
		t.Fatalf("GetCapsule with the pause options: %s", d)
	}
	from := []nestbox.Status{nestbox.StatusStarting}
	for i, st := range []nestbox.Status{nestbox.StatusRunning, nestbox.StatusPausing} {
		if _, err := s.UpdateCapsuleStatus(ctx, "c1", from, store.StatusUpdate{To: st, At: at(1 + i)}); err != nil {
			t.Fatalf("UpdateCapsuleStatus(-> %s): %v", st, err)
		}
		from = []nestbox.Status{st}
	}
	p := &store.Pause{At: at(3), Memory: true, Remaining: 90*time.Second + 250*time.Millisecond}
	got, err := s.UpdateCapsuleStatus(ctx, "c1", from, store.StatusUpdate{To: nestbox.StatusPaused, At: at(3), Pause: p})
	if err != nil {
		t.Fatalf("UpdateCapsuleStatus(-> paused): %v", err)
	}
	want := c
	want.Status, want.UpdatedAt, want.Generation = nestbox.StatusPaused, at(3), 4
	want.PausedAt, want.PausedMemory, want.Remaining = ptr(at(3)), true, p.Remaining
	if d := diff(got, want); d != "" {
		t.Errorf("UpdateCapsuleStatus(-> paused) returned %s", d)
	}
	if d := diff(get(t, s, "c1"), want); d != "" {
		t.Errorf("GetCapsule after the pause: %s", d)
	}
	// A change without Pause leaves the pause's record as it is.
	got, err = s.UpdateCapsuleStatus(ctx, "c1", []nestbox.Status{nestbox.StatusPaused}, store.StatusUpdate{To: nestbox.StatusResuming, At: at(4)})
	if err != nil {
		t.Fatalf("UpdateCapsuleStatus(-> resuming): %v", err)
	}
	if got.PausedAt == nil || !got.PausedAt.Equal(at(3)) || got.Remaining != p.Remaining || !got.PausedMemory {
		t.Errorf("after resuming: PausedAt %v, Remaining %v, PausedMemory %v; want %v, %v, true", got.PausedAt, got.Remaining, got.PausedMemory, at(3), p.Remaining)
	}
}

// testGenerationABA cycles a capsule running → pausing → paused → resuming
// → running and then replays the first change with the generation it was
// made from: the status matches again (running), the generation does not,
// so the store refuses it. Without the generation the stale change would
// be applied.
func testGenerationABA(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	c := capsule("c1", "t1", at(0))
	c.Status = nestbox.StatusRunning
	create(t, s, c)

	gen := get(t, s, "c1").Generation
	if gen != 1 {
		t.Fatalf("a new capsule's Generation = %d, want 1", gen)
	}
	stale := store.StatusUpdate{To: nestbox.StatusPausing, Generation: gen, At: at(1)}
	cur := nestbox.StatusRunning
	for i, st := range []nestbox.Status{nestbox.StatusPausing, nestbox.StatusPaused, nestbox.StatusResuming, nestbox.StatusRunning} {
		got, err := s.UpdateCapsuleStatus(ctx, "c1", []nestbox.Status{cur}, store.StatusUpdate{To: st, Generation: gen, At: at(1 + i)})
		if err != nil {
			t.Fatalf("UpdateCapsuleStatus(%s -> %s at generation %d): %v", cur, st, gen, err)
		}
		if got.Generation != gen+1 {
			t.Fatalf("Generation after %s -> %s = %d, want %d", cur, st, got.Generation, gen+1)
		}
		gen, cur = got.Generation, st
	}
	got, err := s.UpdateCapsuleStatus(ctx, "c1", []nestbox.Status{nestbox.StatusRunning}, stale)
	if !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("replaying running -> pausing at generation %d after the cycle: %v, want ErrConflict", stale.Generation, err)
	}
	if got.Status != nestbox.StatusRunning || got.Generation != gen {
		t.Errorf("the refused replay returned %s at generation %d, want running at %d", got.Status, got.Generation, gen)
	}
	if n := len(events(t, s, "c1")); n != 5 {
		t.Errorf("CapsuleEvents: %d events, want 5 (creation and four changes)", n)
	}
	// The same change from the current generation is applied.
	if _, err := s.UpdateCapsuleStatus(ctx, "c1", []nestbox.Status{nestbox.StatusRunning}, store.StatusUpdate{To: nestbox.StatusPausing, Generation: gen}); err != nil {
		t.Errorf("running -> pausing at the current generation %d: %v", gen, err)
	}
}
