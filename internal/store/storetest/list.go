package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

func testListFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	owner(t, s, "u2", "t2")
	if cs, next, err := s.ListCapsules(ctx, store.CapsuleFilter{}); err != nil || len(cs) != 0 || next != "" {
		t.Errorf("ListCapsules of an empty store = %v, %q, %v; want nothing", cs, next, err)
	}
	for _, c := range []struct {
		id, team, host string
		status         nestbox.Status
		meta           map[string]string
	}{
		{"a", "t1", "h1", nestbox.StatusStarting, map[string]string{"env": "prod", "app": "web"}},
		{"b", "t1", "h1", nestbox.StatusRunning, map[string]string{"env": "prod", "app": "db"}},
		{"c", "t1", "h2", nestbox.StatusRunning, map[string]string{"env": "dev"}},
		{"d", "t2", "h2", nestbox.StatusStopped, map[string]string{"env": "prod", "app": "web"}},
		{"e", "t2", "", nestbox.StatusError, nil},
	} {
		cp := capsule(c.id, c.team, at(int(c.id[0]-'a')))
		cp.HostID, cp.Status, cp.Metadata = c.host, c.status, c.meta
		if c.id == "b" {
			cp.Template = "other"
		}
		create(t, s, cp)
	}

	for _, tc := range []struct {
		name string
		f    store.CapsuleFilter
		want string // IDs, newest first
	}{
		{"all", store.CapsuleFilter{}, "edcba"},
		{"team t1", store.CapsuleFilter{TeamID: "t1"}, "cba"},
		{"team t2", store.CapsuleFilter{TeamID: "t2"}, "ed"},
		{"unknown team", store.CapsuleFilter{TeamID: "t9"}, ""},
		{"running", store.CapsuleFilter{Statuses: []nestbox.Status{nestbox.StatusRunning}}, "cb"},
		{"starting or error", store.CapsuleFilter{Statuses: []nestbox.Status{nestbox.StatusStarting, nestbox.StatusError}}, "ea"},
		{"host h1", store.CapsuleFilter{HostID: "h1"}, "ba"},
		{"host h2", store.CapsuleFilter{HostID: "h2"}, "dc"},
		{"env=prod", store.CapsuleFilter{Metadata: map[string]string{"env": "prod"}}, "dba"},
		{"env=prod app=web", store.CapsuleFilter{Metadata: map[string]string{"env": "prod", "app": "web"}}, "da"},
		{"env=dev app=web", store.CapsuleFilter{Metadata: map[string]string{"env": "dev", "app": "web"}}, ""},
		{"env=pro (a prefix)", store.CapsuleFilter{Metadata: map[string]string{"env": "pro"}}, ""},
		{"missing key", store.CapsuleFilter{Metadata: map[string]string{"nope": "prod"}}, ""},
		{"team t1 env=prod", store.CapsuleFilter{TeamID: "t1", Metadata: map[string]string{"env": "prod"}}, "ba"},
		{"team t1 running host h2", store.CapsuleFilter{TeamID: "t1", HostID: "h2", Statuses: []nestbox.Status{nestbox.StatusRunning}}, "c"},
		{"template other", store.CapsuleFilter{Template: "other"}, "b"},
		{"template other, oldest first", store.CapsuleFilter{Template: "base", Oldest: true}, "acde"},
	} {
		ids, _, err := listAll(ctx, s, tc.f, nil)
		if err != nil {
			t.Errorf("ListCapsules(%s): %v", tc.name, err)
			continue
		}
		if got := strings.Join(ids, ""); got != tc.want {
			t.Errorf("ListCapsules(%s) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func testListLimit(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	const n = 1001 // one more than the largest page
	for i := range n {
		create(t, s, capsule(fmt.Sprintf("c%04d", i), "t1", at(i)))
	}
	for _, tc := range []struct {
		limit, want int
	}{
		{0, 100},
		{1, 1},
		{250, 250},
		{1000, 1000},
		{1001, 1000},
		{1 << 30, 1000},
	} {
		cs, next, err := s.ListCapsules(ctx, store.CapsuleFilter{Limit: tc.limit})
		if err != nil {
			t.Errorf("ListCapsules(limit %d): %v", tc.limit, err)
			continue
		}
		if len(cs) != tc.want || next == "" {
			t.Errorf("ListCapsules(limit %d) = %d capsules, next %q; want %d and a next page", tc.limit, len(cs), next, tc.want)
		}
	}
}

func testListPages(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	// 21 capsules, three to a timestamp: the ID breaks the ties.
	var all []store.Capsule
	for i := range 21 {
		c := capsule(fmt.Sprintf("c%02d", (i*8)%21), "t1", at(i/3))
		if i%2 == 0 {
			c.Metadata = map[string]string{"even": "yes"}
		}
		all = append(all, create(t, s, c))
	}
	want := newestFirst(all)
	var even []store.Capsule
	for _, c := range all {
		if c.Metadata["even"] == "yes" {
			even = append(even, c)
		}
	}
	wantEven := newestFirst(even)

	for _, tc := range []struct {
		f     store.CapsuleFilter
		want  []string
		pages int
	}{
		{store.CapsuleFilter{Limit: 7}, want, 3}, // the last page is full: no empty page after it
		{store.CapsuleFilter{Limit: 5}, want, 5},
		{store.CapsuleFilter{Limit: 1}, want, 21},
		{store.CapsuleFilter{Limit: 100}, want, 1},
		{store.CapsuleFilter{Limit: 4, Metadata: map[string]string{"even": "yes"}}, wantEven, 3},
		{store.CapsuleFilter{Limit: 2, TeamID: "t1", Statuses: []nestbox.Status{nestbox.StatusStarting}}, want, 11},
		{store.CapsuleFilter{Limit: 5, Oldest: true}, reversed(want), 5},
		{store.CapsuleFilter{Limit: 1, Oldest: true, Metadata: map[string]string{"even": "yes"}}, reversed(wantEven), 11},
	} {
		ids, pages, err := listAll(ctx, s, tc.f, nil)
		if err != nil {
			t.Errorf("walking pages of %+v: %v", tc.f, err)
			continue
		}
		if !slices.Equal(ids, tc.want) || pages != tc.pages {
			t.Errorf("walking pages of %+v = %v in %d pages, want %v in %d", tc.f, ids, pages, tc.want, tc.pages)
		}
	}
}

func testListPagesWithInserts(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	var all []store.Capsule
	for i := range 20 {
		all = append(all, create(t, s, capsule(fmt.Sprintf("c%02d", i), "t1", at(10+i))))
	}
	// Capsules created while a client pages: newer ones belong before the
	// cursor and must not show up; an older one is still ahead and must.
	ids, _, err := listAll(ctx, s, store.CapsuleFilter{Limit: 6}, func(page int) {
		create(t, s, capsule(fmt.Sprintf("new%d", page), "t1", at(1000+page)))
		if page == 1 {
			create(t, s, capsule("old", "t1", at(0)))
		}
	})
	if err != nil {
		t.Fatalf("walking pages: %v", err)
	}
	want := append(newestFirst(all), "old")
	if !slices.Equal(ids, want) {
		t.Errorf("walking pages with inserts between them = %v, want %v", ids, want)
	}
}

func testListStartedAfter(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	// Start order differs from creation order (the list's order), and a
	// capsule that has not started yet counts from its creation: a filter
	// applied after paging would return short pages here.
	threshold := at(30)
	var all []store.Capsule
	for i := range 25 {
		c := capsule(fmt.Sprintf("c%02d", i), "t1", at(i))
		if i%3 != 0 {
			c.Status = nestbox.StatusRunning
			c.StartedAt = ptr(at(60 - 2*i))
		}
		all = append(all, create(t, s, c))
	}
	// Boundaries: started exactly at the threshold, created exactly at it
	// and not started, started a nanosecond before it.
	exact := capsule("exact", "t1", at(-1))
	exact.StartedAt = ptr(threshold)
	late := capsule("late", "t1", threshold)
	before := capsule("before", "t1", at(-2))
	before.StartedAt = ptr(threshold.Add(-time.Nanosecond))
	all = append(all, create(t, s, exact), create(t, s, late), create(t, s, before))

	var match []store.Capsule
	for _, c := range all {
		started := c.CreatedAt
		if c.StartedAt != nil {
			started = *c.StartedAt
		}
		if !started.Before(threshold) {
			match = append(match, c)
		}
	}
	want := newestFirst(match)
	if len(want) < 9 {
		t.Fatalf("the fixture matches %d capsules, want more than two pages of 4", len(want))
	}
	for _, tc := range []struct {
		name string
		f    store.CapsuleFilter
		want []string
	}{
		{"newest first", store.CapsuleFilter{Limit: 4, StartedAfter: threshold}, want},
		{"oldest first", store.CapsuleFilter{Limit: 4, StartedAfter: threshold, Oldest: true}, reversed(want)},
		{"with a status", store.CapsuleFilter{Limit: 4, StartedAfter: threshold, Statuses: []nestbox.Status{nestbox.StatusStarting}}, []string{"late", "exact"}},
	} {
		var ids []string
		f := tc.f
		for page := 0; ; page++ {
			cs, next, err := s.ListCapsules(ctx, f)
			if err != nil {
				t.Fatalf("ListCapsules(%s, page %d): %v", tc.name, page, err)
			}
			if next != "" && len(cs) != f.Limit {
				t.Errorf("ListCapsules(%s): page %d has %d capsules and a next page, want full pages of %d", tc.name, page, len(cs), f.Limit)
			}
			for _, c := range cs {
				ids = append(ids, c.ID)
			}
			if next == "" || page > 100 {
				break
			}
			f.Cursor = next
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("ListCapsules(%s) = %v, want %v", tc.name, ids, tc.want)
		}
	}
}

func testListBadCursor(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	create(t, s, capsule("c1", "t1", t0))
	for _, cursor := range []string{"not a cursor", "!!!!", "Zm9v", "%00"} {
		if _, _, err := s.ListCapsules(ctx, store.CapsuleFilter{Cursor: cursor}); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ListCapsules(cursor %q): %v, want ErrInvalid", cursor, err)
		}
	}
}

// reversed returns ids in reverse order.
func reversed(ids []string) []string {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}

// newestFirst is the IDs of cs in ListCapsules's order.
func newestFirst(cs []store.Capsule) []string {
	cs = slices.Clone(cs)
	slices.SortFunc(cs, func(a, b store.Capsule) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
	})
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}
