package storetest

import (
	"fmt"
	"testing"

	"nestbox.dev"
	"nestbox.dev/internal/store"
)

// Bench measures the store's hot paths against the stores newStore makes
// (empty, migrated, closed by newStore with b.Cleanup): a read of a
// capsule, a status compare-and-set and a page of a team's list. Each
// implementation runs it from a benchmark of its own:
//
//	func BenchmarkStore(b *testing.B) { storetest.Bench(b, newStore) }
func Bench(b *testing.B, newStore func(b *testing.B) store.Store) {
	b.Run("GetCapsule", func(b *testing.B) {
		s := benchStore(b, newStore, 1)
		for b.Loop() {
			if _, err := s.GetCapsule(b.Context(), "c0"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UpdateCapsuleStatus", func(b *testing.B) {
		s := benchStore(b, newStore, 1)
		sts := []nestbox.Status{nestbox.StatusStarting, nestbox.StatusRunning}
		i := 0
		for b.Loop() {
			from, to := sts[i%2], sts[(i+1)%2]
			if _, err := s.UpdateCapsuleStatus(b.Context(), "c0", []nestbox.Status{from}, store.StatusUpdate{To: to}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("ListCapsules50", func(b *testing.B) {
		s := benchStore(b, newStore, 200)
		for b.Loop() {
			cs, _, err := s.ListCapsules(b.Context(), store.CapsuleFilter{TeamID: "t1", Limit: 50})
			if err != nil || len(cs) != 50 {
				b.Fatalf("ListCapsules: %d capsules, %v; want 50", len(cs), err)
			}
		}
	})
}

// benchStore is a store with a team t1 and n capsules c0, c1, ...
func benchStore(b *testing.B, newStore func(b *testing.B) store.Store, n int) store.Store {
	s := newStore(b)
	if err := s.CreateUser(b.Context(), store.User{ID: "u1", CreatedAt: t0}); err != nil {
		b.Fatalf("CreateUser: %v", err)
	}
	if err := s.CreateTeam(b.Context(), store.Team{ID: "t1", CreatedAt: t0}, "u1"); err != nil {
		b.Fatalf("CreateTeam: %v", err)
	}
	for i := range n {
		c := capsule(fmt.Sprintf("c%d", i), "t1", at(i))
		c.Metadata = map[string]string{"k": "v"}
		if err := s.CreateCapsule(b.Context(), c); err != nil {
			b.Fatalf("CreateCapsule: %v", err)
		}
	}
	return s
}
