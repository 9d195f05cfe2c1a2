package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// testQuotaRace runs 20 concurrent creates against a limit of 5 live
// capsules: exactly 5 must be admitted and stored, the rest refused with
// ErrExhausted. A count outside the insert's transaction lets more in.
func testQuotaRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	const tries, limit = 20, 5
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for i := range tries {
		id := fmt.Sprintf("q%02d", i)
		wg.Go(func() {
			err := s.CreateCapsuleWithin(ctx, capsule(id, "t1", at(i)), store.Quota{Capsules: limit})
			switch {
			case err == nil:
				admitted.Add(1)
			case !errors.Is(err, errdefs.ErrExhausted):
				t.Errorf("CreateCapsuleWithin(%s): %v, want nil or ErrExhausted", id, err)
			}
		})
	}
	wg.Wait()
	cs, _, err := s.ListCapsules(ctx, store.CapsuleFilter{TeamID: "t1", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if n := admitted.Load(); n != limit || len(cs) != limit {
		t.Errorf("%d creates admitted, %d capsules stored; want %d of %d", n, len(cs), limit, tries)
	}
}

// testQuotaLimits checks each limit, that only live capsules count, that a
// team's own limits override the default field by field, and that
// another team's capsules do not count.
func testQuotaLimits(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	owner(t, s, "u2", "t2")
	q := store.Quota{Capsules: 3, VCPUs: 4, MemoryMB: 2048}
	big := func(id string, vcpus, mem int) store.Capsule {
		c := capsule(id, "t1", at(len(id)))
		c.VCPUs, c.MemoryMB = vcpus, mem
		return c
	}
	try := func(c store.Capsule, q store.Quota, wantOK bool) {
		t.Helper()
		err := s.CreateCapsuleWithin(ctx, c, q)
		if wantOK && err != nil || !wantOK && !errors.Is(err, errdefs.ErrExhausted) {
			t.Fatalf("CreateCapsuleWithin(%s, %d vCPUs, %d MB, %+v): %v, want ok %v", c.ID, c.VCPUs, c.MemoryMB, q, err, wantOK)
		}
	}
	try(big("a", 2, 512), q, true)
	try(big("b", 3, 512), q, false)  // 5 vCPUs > 4
	try(big("c", 2, 1600), q, false) // 2112 MB > 2048
	try(big("d", 2, 1536), q, true)  // 4 vCPUs, 2048 MB: at the limits
	try(big("e", 1, 64), q, false)   // vCPUs full
	// Another team is not affected.
	other := capsule("f", "t2", at(10))
	try(other, store.Quota{Capsules: 1}, true)

	// A stopped or failed capsule no longer counts.
	for id, to := range map[string]nestbox.Status{"a": nestbox.StatusStopped, "d": nestbox.StatusError} {
		if _, err := s.UpdateCapsuleStatus(ctx, id, []nestbox.Status{nestbox.StatusStarting}, store.StatusUpdate{To: to}); err != nil {
			t.Fatal(err)
		}
	}
	try(big("g", 4, 2048), q, true)

	// The team's own limits: more vCPUs, the default capsule count, no
	// memory limit.
	if err := s.SetTeamLimits(ctx, "t1", store.TeamLimits{VCPUs: ptr(8), MemoryMB: ptr(0)}); err != nil {
		t.Fatal(err)
	}
	try(big("h", 3, 100000), q, true) // 7 vCPUs, memory unlimited
	try(big("i", 1, 64), q, true)     // 3 capsules, 8 vCPUs
	try(big("j", 1, 64), q, false)    // a 4th capsule: the default count still holds
	if err := s.SetTeamLimits(ctx, "t1", store.TeamLimits{Capsules: ptr(0), VCPUs: ptr(10), MemoryMB: ptr(0)}); err != nil {
		t.Fatal(err)
	}
	try(big("j", 1, 64), q, true)  // any count, 9 vCPUs
	try(big("k", 2, 64), q, false) // 11 vCPUs > 10

	// An unknown team is not found, whatever the quota.
	if err := s.CreateCapsuleWithin(ctx, capsule("k", "nobody", at(20)), store.Quota{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("CreateCapsuleWithin of an unknown team: %v, want ErrNotFound", err)
	}
}

// testTeamLimits round-trips a team's own limits.
func testTeamLimits(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	l, err := s.TeamLimits(ctx, "t1")
	if err != nil || l.Capsules != nil || l.VCPUs != nil || l.MemoryMB != nil {
		t.Fatalf("TeamLimits of a team with none = %+v, %v; want all nil", l, err)
	}
	for _, want := range []store.TeamLimits{
		{Capsules: ptr(5), VCPUs: ptr(0)},
		{MemoryMB: ptr(4096)},
		{},
	} {
		if err := s.SetTeamLimits(ctx, "t1", want); err != nil {
			t.Fatal(err)
		}
		got, err := s.TeamLimits(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(deref(got.Capsules), deref(got.VCPUs), deref(got.MemoryMB)) != fmt.Sprint(deref(want.Capsules), deref(want.VCPUs), deref(want.MemoryMB)) {
			t.Errorf("TeamLimits = %s, want %s", show(got), show(want))
		}
	}
	if err := s.SetTeamLimits(ctx, "nobody", store.TeamLimits{Capsules: ptr(1)}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("SetTeamLimits of an unknown team: %v, want ErrNotFound", err)
	}
	if err := s.SetTeamLimits(ctx, "t1", store.TeamLimits{Capsules: ptr(-1)}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("SetTeamLimits(-1): %v, want ErrInvalid", err)
	}
}

func deref(p *int) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

func show(l store.TeamLimits) string {
	return fmt.Sprintf("{capsules %s, vcpus %s, memory %s}", deref(l.Capsules), deref(l.VCPUs), deref(l.MemoryMB))
}
