package storetest

import (
	"fmt"
	"slices"
	"testing"

	"nestbox.dev"
	"nestbox.dev/internal/store"
)

func testCountCapsules(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	for i, c := range []struct {
		host   string
		status nestbox.Status
	}{
		{"h1", nestbox.StatusRunning}, {"h1", nestbox.StatusRunning}, {"h1", nestbox.StatusPaused},
		{"h2", nestbox.StatusRunning}, {"h2", nestbox.StatusStopped}, {"h2", nestbox.StatusStarting},
	} {
		cp := capsule(fmt.Sprintf("c%d", i), "t1", at(i))
		cp.HostID, cp.Status = c.host, c.status
		create(t, s, cp)
	}
	show := func(cs []store.CapsuleCount) []string {
		var out []string
		for _, c := range cs {
			out = append(out, fmt.Sprintf("%s/%s=%d", c.HostID, c.Status, c.Count))
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		statuses []nestbox.Status
		want     []string
	}{
		{[]nestbox.Status{nestbox.StatusRunning, nestbox.StatusPaused, nestbox.StatusStarting},
			[]string{"h1/paused=1", "h1/running=2", "h2/running=1", "h2/starting=1"}},
		{[]nestbox.Status{nestbox.StatusStopped}, []string{"h2/stopped=1"}},
		{[]nestbox.Status{nestbox.StatusMissing}, nil},
		{nil, nil},
	} {
		got, err := s.CountCapsules(ctx, tc.statuses)
		if err != nil {
			t.Fatalf("CountCapsules(%v): %v", tc.statuses, err)
		}
		if !slices.Equal(show(got), tc.want) {
			t.Errorf("CountCapsules(%v) = %v, want %v", tc.statuses, show(got), tc.want)
		}
	}
}
