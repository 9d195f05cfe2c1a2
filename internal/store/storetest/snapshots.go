package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// snapshot is a creating snapshot of team taken from capsule c0 at
// created, with every field set.
func snapshot(id, team, name string, created time.Time) store.Snapshot {
	return store.Snapshot{
		Snapshot: nestbox.Snapshot{
			ID:          id,
			TeamID:      team,
			Name:        name,
			CapsuleID:   "c0",
			HostID:      "h1",
			Status:      nestbox.SnapshotCreating,
			Template:    "base",
			VCPUs:       2,
			MemoryMB:    512,
			DiskMB:      1024,
			Internet:    true,
			AllowOut:    []string{"1.1.1.1"},
			DenyOut:     []string{"8.8.8.0/24"},
			SizeBytes:   1536 << 20,
			EnvdVersion: "0.6.13",
			CreatedAt:   created,
		},
		EnvVars:   map[string]string{"SECRET": "s3"},
		UpdatedAt: created,
	}
}

// createSnapshot stores sn under no quota and fails the test if it cannot.
func createSnapshot(t *testing.T, s store.Store, sn store.Snapshot) store.Snapshot {
	t.Helper()
	if err := s.CreateSnapshotWithin(t.Context(), sn, store.Quota{}); err != nil {
		t.Fatalf("CreateSnapshotWithin(%s): %v", sn.ID, err)
	}
	return sn
}

// listSnapshotIDs walks every page of f and returns the IDs in order.
func listSnapshotIDs(t *testing.T, s store.Store, f store.SnapshotFilter) []string {
	t.Helper()
	var ids []string
	for range 1000 {
		page, next, err := s.ListSnapshots(t.Context(), f)
		if err != nil {
			t.Fatalf("ListSnapshots(%+v): %v", f, err)
		}
		for _, sn := range page {
			ids = append(ids, sn.ID)
		}
		if next == "" {
			return ids
		}
		f.Cursor = next
	}
	t.Fatalf("ListSnapshots(%+v): the cursor does not advance", f)
	return nil
}

// testSnapshotRoundTrip stores a snapshot with every field set, reads it
// back by ID and through each filter, and checks names are unique per team.
func testSnapshotRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	owner(t, s, "u2", "t2")
	want := createSnapshot(t, s, snapshot("s1", "t1", "env:v1", at(1)))
	got, err := s.GetSnapshot(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(got, want); d != "" {
		t.Errorf("GetSnapshot: %s", d)
	}
	if _, err := s.GetSnapshot(ctx, "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("GetSnapshot(unknown): %v, want ErrNotFound", err)
	}
	// Names are unique per team; unnamed snapshots are many.
	if err := s.CreateSnapshotWithin(ctx, snapshot("s2", "t1", "env:v1", at(2)), store.Quota{}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("a second snapshot named env:v1 in t1: %v, want ErrAlreadyExists", err)
	}
	createSnapshot(t, s, snapshot("s3", "t2", "env:v1", at(3)))
	createSnapshot(t, s, snapshot("s4", "t1", "", at(4)))
	other := snapshot("s5", "t1", "", at(5))
	other.CapsuleID = "c9"
	createSnapshot(t, s, other)
	if err := s.CreateSnapshotWithin(ctx, snapshot("s6", "nobody", "", at(6)), store.Quota{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a snapshot of an unknown team: %v, want ErrNotFound", err)
	}
	for _, tc := range []struct {
		f    store.SnapshotFilter
		want []string
	}{
		{store.SnapshotFilter{TeamID: "t1"}, []string{"s5", "s4", "s1"}},
		{store.SnapshotFilter{TeamID: "t2"}, []string{"s3"}},
		{store.SnapshotFilter{TeamID: "t1", CapsuleID: "c0"}, []string{"s4", "s1"}},
		{store.SnapshotFilter{TeamID: "t1", Name: "env:v1"}, []string{"s1"}},
		{store.SnapshotFilter{Name: "env:v1"}, []string{"s3", "s1"}},
		{store.SnapshotFilter{HostID: "h1", Statuses: []nestbox.SnapshotStatus{nestbox.SnapshotReady}}, nil},
		{store.SnapshotFilter{TeamID: "t1", Statuses: []nestbox.SnapshotStatus{nestbox.SnapshotCreating}}, []string{"s5", "s4", "s1"}},
	} {
		if got := listSnapshotIDs(t, s, tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("ListSnapshots(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
}

// testSnapshotPages walks a team's snapshots in pages: newest first, each
// once, and a cursor that the store did not make is ErrInvalid.
func testSnapshotPages(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	var want []string
	for i := range 7 {
		id := fmt.Sprintf("p%d", i)
		// Two share each timestamp: the ID breaks the tie.
		createSnapshot(t, s, snapshot(id, "t1", "", at(i/2)))
		want = append([]string{id}, want...)
	}
	f := store.SnapshotFilter{TeamID: "t1", Limit: 3}
	pages := 0
	var got []string
	for {
		page, next, err := s.ListSnapshots(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, sn := range page {
			got = append(got, sn.ID)
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	if !slices.Equal(got, want) || pages != 3 {
		t.Errorf("pages of 3: %v in %d pages, want %v in 3", got, pages, want)
	}
	if _, _, err := s.ListSnapshots(ctx, store.SnapshotFilter{Cursor: "not-a-cursor"}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("ListSnapshots with a bad cursor: %v, want ErrInvalid", err)
	}
	if _, _, err := s.ListSnapshots(ctx, store.SnapshotFilter{Limit: -1}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("ListSnapshots with limit -1: %v, want ErrInvalid", err)
	}
}

// testSnapshotStatus checks the compare-and-set of a snapshot's status and
// the rules that keep a template's snapshot: it cannot move to deleting
// nor be deleted while it backs a template, and only a ready snapshot can
// back one.
func testSnapshotStatus(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	createSnapshot(t, s, snapshot("s1", "t1", "a:default", at(1)))
	createSnapshot(t, s, snapshot("s2", "t1", "", at(2)))
	if err := s.SetSnapshotTemplate(ctx, "s1", "tpl"); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("SetSnapshotTemplate of a creating snapshot: %v, want ErrConflict", err)
	}
	ready := []nestbox.SnapshotStatus{nestbox.SnapshotCreating}
	got, err := s.UpdateSnapshot(ctx, "s1", ready, store.SnapshotUpdate{To: nestbox.SnapshotReady, SizeBytes: 777, DiskMB: 2048, EnvdVersion: "0.7.0"})
	if err != nil || got.Status != nestbox.SnapshotReady || got.SizeBytes != 777 || got.DiskMB != 2048 || got.EnvdVersion != "0.7.0" {
		t.Fatalf("UpdateSnapshot to ready = %+v, %v; want ready with size 777, disk 2048, envd 0.7.0", got.Snapshot, err)
	}
	got, err = s.UpdateSnapshot(ctx, "s1", ready, store.SnapshotUpdate{To: nestbox.SnapshotError})
	if !errors.Is(err, errdefs.ErrConflict) || got.Status != nestbox.SnapshotReady {
		t.Errorf("UpdateSnapshot from creating of a ready snapshot = %s, %v; want ErrConflict with it ready", got.Status, err)
	}
	if _, err := s.UpdateSnapshot(ctx, "nope", ready, store.SnapshotUpdate{To: nestbox.SnapshotReady}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("UpdateSnapshot(unknown): %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateSnapshot(ctx, "s2", ready, store.SnapshotUpdate{To: nestbox.SnapshotReady}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSnapshotTemplate(ctx, "s1", "tpl"); err != nil {
		t.Fatalf("SetSnapshotTemplate(s1, tpl): %v", err)
	}
	if err := s.SetSnapshotTemplate(ctx, "s2", "tpl"); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("a second snapshot for template tpl: %v, want ErrAlreadyExists", err)
	}
	if ids := listSnapshotIDs(t, s, store.SnapshotFilter{TeamID: "t1", TemplateName: "tpl"}); !slices.Equal(ids, []string{"s1"}) {
		t.Errorf("snapshots of template tpl = %v, want [s1]", ids)
	}
	// Pools: only of a template's snapshot, within the team's cap.
	if err := s.SetSnapshotPool(ctx, "s2", 1, 0); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("SetSnapshotPool of a snapshot that backs no template: %v, want ErrConflict", err)
	}
	if err := s.SetSnapshotPool(ctx, "nope", 1, 0); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("SetSnapshotPool(unknown): %v, want ErrNotFound", err)
	}
	if err := s.SetSnapshotPool(ctx, "s1", 3, 2); !errors.Is(err, errdefs.ErrExhausted) {
		t.Errorf("SetSnapshotPool over the cap: %v, want ErrExhausted", err)
	}
	if err := s.SetSnapshotPool(ctx, "s1", 2, 2); err != nil {
		t.Fatalf("SetSnapshotPool(s1, 2): %v", err)
	}
	if got, err := s.GetSnapshot(ctx, "s1"); err != nil || got.PoolSize != 2 {
		t.Errorf("pool of s1 = %d, %v; want 2", got.PoolSize, err)
	}
	if err := s.SetSnapshotTemplate(ctx, "s2", "tpl2"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSnapshotPool(ctx, "s2", 1, 2); !errors.Is(err, errdefs.ErrExhausted) {
		t.Errorf("a second pool past the team's cap: %v, want ErrExhausted", err)
	}
	if err := s.SetSnapshotPool(ctx, "s1", 1, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSnapshotPool(ctx, "s2", 1, 2); err != nil {
		t.Errorf("a second pool within the team's cap: %v", err)
	}
	if err := s.SetSnapshotTemplate(ctx, "s2", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSnapshot(ctx, "s2"); err != nil || got.PoolSize != 0 {
		t.Errorf("pool of s2 after its template went = %d, %v; want 0", got.PoolSize, err)
	}
	anyStatus := []nestbox.SnapshotStatus{nestbox.SnapshotReady, nestbox.SnapshotError}
	if _, err := s.UpdateSnapshot(ctx, "s1", anyStatus, store.SnapshotUpdate{To: nestbox.SnapshotDeleting}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("UpdateSnapshot to deleting of a template's snapshot: %v, want ErrConflict", err)
	}
	if err := s.DeleteSnapshot(ctx, "s1"); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("DeleteSnapshot of a template's snapshot: %v, want ErrConflict", err)
	}
	if err := s.SetSnapshotTemplate(ctx, "s1", ""); err != nil {
		t.Fatal(err)
	}
	got, err = s.UpdateSnapshot(ctx, "s1", anyStatus, store.SnapshotUpdate{To: nestbox.SnapshotDeleting})
	if err != nil || got.Status != nestbox.SnapshotDeleting || got.TemplateName != "" {
		t.Fatalf("UpdateSnapshot to deleting = %+v, %v", got.Snapshot, err)
	}
	if err := s.DeleteSnapshot(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSnapshot(ctx, "s1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("DeleteSnapshot twice: %v, want ErrNotFound", err)
	}
	// The name is free again once the snapshot is gone.
	createSnapshot(t, s, snapshot("s3", "t1", "a:default", at(3)))
	got, err = s.UpdateSnapshot(ctx, "s2", anyStatus, store.SnapshotUpdate{To: nestbox.SnapshotError, Error: "host lost it"})
	if err != nil || got.Error != "host lost it" {
		t.Errorf("UpdateSnapshot to error = %+v, %v; want its reason kept", got.Snapshot, err)
	}
}

// testSnapshotQuota checks the snapshot count limit and the disk limit,
// which counts live capsules' disk and snapshots' sizes together, for
// snapshots and capsules alike, with the team's own limits overriding.
func testSnapshotQuota(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	owner(t, s, "u2", "t2")
	sized := func(id string, size int64) store.Snapshot {
		sn := snapshot(id, "t1", "", at(len(id)))
		sn.SizeBytes = size
		return sn
	}
	q := store.Quota{Snapshots: 2, DiskMB: 3000}
	try := func(sn store.Snapshot, wantOK bool) {
		t.Helper()
		err := s.CreateSnapshotWithin(ctx, sn, q)
		if wantOK && err != nil || !wantOK && !errors.Is(err, errdefs.ErrExhausted) {
			t.Fatalf("CreateSnapshotWithin(%s, %d bytes, %+v): %v, want ok %v", sn.ID, sn.SizeBytes, q, err, wantOK)
		}
	}
	c := capsule("c1", "t1", at(0))
	c.DiskMB = 1000
	if err := s.CreateCapsuleWithin(ctx, c, q); err != nil {
		t.Fatal(err)
	}
	try(sized("a", 1000<<20), true)
	try(sized("b", 1000<<20+1), false) // 1001 MB (rounded up) > 3000 - 2000
	try(sized("b", 1000<<20), true)    // at the disk limit
	try(sized("c", 1), false)          // third snapshot, and the disk is full
	// A capsule's disk counts against the snapshots' too.
	c2 := capsule("c2", "t1", at(1))
	c2.DiskMB = 1
	if err := s.CreateCapsuleWithin(ctx, c2, q); !errors.Is(err, errdefs.ErrExhausted) {
		t.Errorf("a capsule of 1 MB over a full disk: %v, want ErrExhausted", err)
	}
	// A stopped capsule's disk no longer counts; a snapshot's does.
	if _, err := s.UpdateCapsuleStatus(ctx, "c1", []nestbox.Status{nestbox.StatusStarting}, store.StatusUpdate{To: nestbox.StatusStopped}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateCapsuleWithin(ctx, c2, q); err != nil {
		t.Errorf("a capsule of 1 MB after the disk was freed: %v", err)
	}
	// The team's own limits override the default.
	if err := s.SetTeamLimits(ctx, "t1", store.TeamLimits{Snapshots: ptr(3), DiskMB: ptr(0)}); err != nil {
		t.Fatal(err)
	}
	l, err := s.TeamLimits(ctx, "t1")
	if err != nil || deref(l.Snapshots) != "3" || deref(l.DiskMB) != "0" || l.Capsules != nil {
		t.Fatalf("TeamLimits = %+v, %v; want snapshots 3, disk 0, the rest nil", l, err)
	}
	try(sized("c", 1<<40), true) // no disk limit
	try(sized("d", 1), false)    // a fourth snapshot
	// Another team is not affected.
	if err := s.CreateSnapshotWithin(ctx, snapshot("e", "t2", "", at(9)), store.Quota{Snapshots: 1}); err != nil {
		t.Errorf("a snapshot of another team: %v", err)
	}
}

// testSnapshotQuotaRace runs 12 concurrent snapshot creates against a
// limit of 3: exactly 3 are stored.
func testSnapshotQuotaRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	const tries, limit = 12, 3
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for i := range tries {
		id := fmt.Sprintf("r%02d", i)
		wg.Go(func() {
			err := s.CreateSnapshotWithin(ctx, snapshot(id, "t1", "", at(i)), store.Quota{Snapshots: limit})
			switch {
			case err == nil:
				admitted.Add(1)
			case !errors.Is(err, errdefs.ErrExhausted):
				t.Errorf("CreateSnapshotWithin(%s): %v, want nil or ErrExhausted", id, err)
			}
		})
	}
	wg.Wait()
	if n, ids := admitted.Load(), listSnapshotIDs(t, s, store.SnapshotFilter{TeamID: "t1"}); n != limit || len(ids) != limit {
		t.Errorf("%d snapshot creates admitted, %d stored; want %d of %d", n, len(ids), limit, tries)
	}
}
