package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

func joinToken(id string, uses int, expires int) store.JoinToken {
	return store.JoinToken{ID: id, Hash: "hash-" + id, CreatedBy: "u1", Created: at(0), Expires: at(expires), UsesLeft: uses}
}

func testJoinTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, tok := range []store.JoinToken{joinToken("jt1", 1, 10), joinToken("jt2", 3, 20), joinToken("jt3", 1, 5)} {
		if err := s.CreateJoinToken(ctx, tok, 3, at(1)); err != nil {
			t.Fatalf("CreateJoinToken(%s): %v", tok.ID, err)
		}
	}
	if err := s.CreateJoinToken(ctx, joinToken("jt4", 1, 10), 3, at(1)); !errors.Is(err, errdefs.ErrExhausted) {
		t.Errorf("a fourth token with a maximum of 3: %v, want ErrExhausted", err)
	}
	// At minute 6, jt3 has expired: it neither counts nor lists.
	if err := s.CreateJoinToken(ctx, joinToken("jt4", 1, 10), 3, at(6)); err != nil {
		t.Errorf("a token after one expired: %v", err)
	}
	ts, err := s.ListJoinTokens(ctx, at(6))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tok := range ts {
		ids = append(ids, tok.ID)
	}
	if want := []string{"jt1", "jt2", "jt4"}; !slices.Equal(ids, want) {
		t.Errorf("ListJoinTokens = %v, want %v", ids, want)
	}
	if d := diff(ts[1], joinToken("jt2", 3, 20)); d != "" {
		t.Errorf("jt2 read back: %s", d)
	}
	if err := s.DeleteJoinToken(ctx, "jt4"); err != nil {
		t.Errorf("DeleteJoinToken(jt4): %v", err)
	}
	if err := s.DeleteJoinToken(ctx, "jt4"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("DeleteJoinToken(jt4) again: %v, want ErrNotFound", err)
	}
}

func testRegisterHost(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.CreateJoinToken(ctx, joinToken("jt1", 2, 10), 0, at(0)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateJoinToken(ctx, joinToken("old", 5, 2), 0, at(0)); err != nil {
		t.Fatal(err)
	}
	h1 := store.Host{ID: "h1", Name: "one", Address: "http://10.0.0.1:5007", AgentToken: "secret-1", State: store.HostActive,
		Capacity: store.HostCapacity{CPUs: 2, MemoryTotalBytes: 8 << 30, Templates: []string{"base"}}, LastSeen: at(1), Created: at(1)}
	if err := s.RegisterHost(ctx, h1, "hash-jt1", at(1)); err != nil {
		t.Fatalf("RegisterHost(h1): %v", err)
	}
	got, err := s.GetHost(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(got, h1); d != "" {
		t.Errorf("GetHost(h1): %s", d)
	}
	h2 := h1
	h2.ID, h2.Name = "h2", "two"
	for _, tc := range []struct {
		name, hash string
		at         int
	}{
		{"an unknown token", "hash-nope", 1},
		{"an expired token", "hash-old", 3},
	} {
		if err := s.RegisterHost(ctx, h2, tc.hash, at(tc.at)); !errors.Is(err, errdefs.ErrUnauthenticated) {
			t.Errorf("RegisterHost with %s: %v, want ErrUnauthenticated", tc.name, err)
		}
	}
	if err := s.RegisterHost(ctx, h1, "hash-jt1", at(1)); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("RegisterHost(h1) again: %v, want ErrAlreadyExists", err)
	}
	// The failed insert gave its use back (one transaction): jt1 has one
	// use left, which h2 takes; then it is used up.
	if err := s.RegisterHost(ctx, h2, "hash-jt1", at(1)); err != nil {
		t.Fatalf("RegisterHost(h2) with the token's last use: %v", err)
	}
	h3 := h1
	h3.ID = "h3"
	if err := s.RegisterHost(ctx, h3, "hash-jt1", at(1)); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("RegisterHost with a used-up token: %v, want ErrUnauthenticated", err)
	}
	hs, err := s.ListHosts(ctx)
	if err != nil || len(hs) != 2 || hs[0].ID != "h1" || hs[1].ID != "h2" {
		t.Errorf("ListHosts = %v, %v; want h1, h2", hs, err)
	}
}

// testRegisterRace registers many hosts at once with a token of one use:
// exactly one gets in.
func testRegisterRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.CreateJoinToken(ctx, joinToken("once", 1, 10), 0, at(0)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			h := store.Host{ID: fmt.Sprintf("h%d", i), Address: "http://x", State: store.HostActive, LastSeen: at(1), Created: at(1)}
			errs[i] = s.RegisterHost(ctx, h, "hash-once", at(1))
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, errdefs.ErrUnauthenticated):
			t.Errorf("registration %d: %v, want success or ErrUnauthenticated", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("%d registrations with a one-use token succeeded, want 1", ok)
	}
}

func testHostHeartbeats(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.CreateJoinToken(ctx, joinToken("jt", 2, 100), 0, at(0)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"h1", "h2"} {
		h := store.Host{ID: id, Address: "http://old", AgentToken: "t", State: store.HostActive, LastSeen: at(1), Created: at(1)}
		if err := s.RegisterHost(ctx, h, "hash-jt", at(1)); err != nil {
			t.Fatal(err)
		}
	}
	c := store.HostCapacity{CPUs: 4, MemoryAvailableBytes: 1 << 30, Sandboxes: 3, Snapshots: []string{"s1"}}
	back, err := s.HeartbeatHost(ctx, "h1", "http://new", c, at(5))
	if err != nil || back {
		t.Fatalf("HeartbeatHost(h1) = %v, %v; want false, nil", back, err)
	}
	got, _ := s.GetHost(ctx, "h1")
	if got.Address != "http://new" || !got.LastSeen.Equal(at(5)) || diff(got.Capacity, c) != "" {
		t.Errorf("after a heartbeat, h1 = %+v", got)
	}

	// h2 was last seen at minute 1: unreachable from minute 3 on, once.
	ids, err := s.MarkHostsUnreachable(ctx, at(3))
	if err != nil || !slices.Equal(ids, []string{"h2"}) {
		t.Errorf("MarkHostsUnreachable(3) = %v, %v; want [h2]", ids, err)
	}
	if ids, err := s.MarkHostsUnreachable(ctx, at(3)); err != nil || len(ids) != 0 {
		t.Errorf("MarkHostsUnreachable(3) again = %v, %v; want none", ids, err)
	}
	if got, _ := s.GetHost(ctx, "h2"); !got.Unreachable {
		t.Errorf("h2 is not unreachable after MarkHostsUnreachable")
	}
	if back, err := s.HeartbeatHost(ctx, "h2", "http://old", c, at(6)); err != nil || !back {
		t.Errorf("the first heartbeat of unreachable h2 = %v, %v; want true, nil", back, err)
	}
	if back, err := s.HeartbeatHost(ctx, "h2", "http://old", c, at(7)); err != nil || back {
		t.Errorf("the second heartbeat of h2 = %v, %v; want false, nil", back, err)
	}
	if _, err := s.HeartbeatHost(ctx, "nope", "http://x", c, at(7)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("HeartbeatHost(nope): %v, want ErrNotFound", err)
	}

	if err := s.SetHostState(ctx, "h1", store.HostCordoned); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetHost(ctx, "h1"); got.State != store.HostCordoned {
		t.Errorf("h1's state = %q after cordon", got.State)
	}
	if err := s.SetHostState(ctx, "h1", "sleeping"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("SetHostState(sleeping): %v, want ErrInvalid", err)
	}
	if err := s.SetHostState(ctx, "nope", store.HostDraining); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("SetHostState(nope): %v, want ErrNotFound", err)
	}
	if err := s.DeleteHost(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetHost(ctx, "h1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("GetHost(h1) after DeleteHost: %v, want ErrNotFound", err)
	}
	if err := s.DeleteHost(ctx, "h1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("DeleteHost(h1) again: %v, want ErrNotFound", err)
	}
}

func testLeases(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i, step := range []struct {
		holder     string
		until, now int
		want       bool
	}{
		{"a", 10, 0, true},  // free
		{"b", 20, 5, false}, // held by a
		{"a", 15, 5, true},  // a renews
		{"b", 30, 15, true}, // expired at 15: b takes it
		{"a", 40, 16, false},
	} {
		got, err := s.AcquireLease(ctx, "monitor", step.holder, at(step.until), at(step.now))
		if err != nil || got != step.want {
			t.Errorf("step %d: AcquireLease(%s, until %d, at %d) = %v, %v; want %v", i, step.holder, step.until, step.now, got, err, step.want)
		}
	}
	if ok, err := s.AcquireLease(ctx, "other", "a", at(40), at(16)); err != nil || !ok {
		t.Errorf("another lease's name: %v, %v; want it free", ok, err)
	}

	// Many holders at once on a free lease: exactly one.
	var wg sync.WaitGroup
	got := make([]bool, 8)
	for i := range got {
		wg.Go(func() {
			ok, err := s.AcquireLease(ctx, "race", fmt.Sprintf("cp%d", i), at(10), at(0))
			if err != nil {
				t.Errorf("AcquireLease(cp%d): %v", i, err)
			}
			got[i] = ok
		})
	}
	wg.Wait()
	if n := len(slices.DeleteFunc(got, func(b bool) bool { return !b })); n != 1 {
		t.Errorf("%d control planes acquired one free lease at once, want 1", n)
	}
}

// testTouchCapsules checks that a touch moves UpdatedAt of the named
// capsules in the given statuses only, and nothing else of them.
func testTouchCapsules(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	for _, id := range []string{"c1", "c2", "c3"} {
		create(t, s, capsule(id, "t1", at(0)))
	}
	if _, err := s.UpdateCapsuleStatus(ctx, "c2", []nestbox.Status{nestbox.StatusStarting},
		store.StatusUpdate{To: nestbox.StatusRunning, At: at(1)}); err != nil {
		t.Fatal(err)
	}
	transient := []nestbox.Status{nestbox.StatusStarting, nestbox.StatusPausing}
	if err := s.TouchCapsules(ctx, []string{"c1", "c2", "nope"}, transient, at(5)); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]time.Time{"c1": at(5), "c2": at(1), "c3": at(0)} {
		c, err := s.GetCapsule(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !c.UpdatedAt.Equal(want) {
			t.Errorf("%s: UpdatedAt %v, want %v", id, c.UpdatedAt, want)
		}
		if id == "c1" && (c.Status != nestbox.StatusStarting || c.Generation != 1) {
			t.Errorf("a touch changed c1's status or generation: %s, %d", c.Status, c.Generation)
		}
	}
	if err := s.TouchCapsules(ctx, nil, transient, at(9)); err != nil {
		t.Errorf("a touch of no capsule: %v", err)
	}
}
