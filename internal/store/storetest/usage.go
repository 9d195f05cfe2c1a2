package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"nestbox.dev/internal/store"
)

// usageDay0 is the first day of the usage tests' samples.
var usageDay0 = store.StartOfDay(t0)

// day is n days after usageDay0.
func day(n int) time.Time { return usageDay0.AddDate(0, 0, n) }

// usageSamples makes synthetic samples of team's capsules on each of days:
// a few capsules, at times that include the first and the last second of
// the day, with values that differ from sample to sample.
func usageSamples(team string, days ...int) []store.UsageSample {
	var out []store.UsageSample
	offsets := []time.Duration{0, 30 * time.Second, 7 * time.Hour, 23*time.Hour + 59*time.Minute + 59*time.Second}
	for _, d := range days {
		for c := range 3 {
			for i, off := range offsets {
				if c == 2 && i%2 == 1 {
					continue // the third capsule runs less
				}
				n := d*100 + c*10 + i
				out = append(out, store.UsageSample{
					TeamID:       team,
					CapsuleID:    fmt.Sprintf("%s-c%d", team, c),
					At:           day(d).Add(off),
					Seconds:      25 + n%7,
					VCPUs:        1 + c,
					MemoryMB:     256 << c,
					DiskMB:       1024 + 512*c,
					CPUMillis:    int64(1000*(c+1) + n),
					MemoryUsedMB: int64(100 + n%50),
					DiskUsedMB:   int64(300 + n%90),
				})
			}
		}
	}
	return out
}

// expectedUsage computes, from the inputs, the usage of team per day that
// the samples make: what a rollup and the live query must return.
func expectedUsage(samples []store.UsageSample, team string) []store.UsageDay {
	byDay := map[time.Time]*store.UsageDay{}
	capsules := map[time.Time]map[string]bool{}
	for _, u := range samples {
		if u.TeamID != team {
			continue
		}
		d := store.StartOfDay(u.At)
		if byDay[d] == nil {
			byDay[d] = &store.UsageDay{Day: d}
			capsules[d] = map[string]bool{}
		}
		x := byDay[d]
		capsules[d][u.CapsuleID] = true
		sec := int64(u.Seconds)
		x.VCPUSeconds += int64(u.VCPUs) * sec
		x.MemoryMBSeconds += int64(u.MemoryMB) * sec
		x.DiskMBSeconds += int64(u.DiskMB) * sec
		x.CPUMillis += u.CPUMillis
		x.MemoryUsedMBSeconds += u.MemoryUsedMB * sec
		x.DiskUsedMBSeconds += u.DiskUsedMB * sec
	}
	var out []store.UsageDay
	for d, x := range byDay {
		x.Capsules = len(capsules[d])
		out = append(out, *x)
	}
	slices.SortFunc(out, func(a, b store.UsageDay) int { return a.Day.Compare(b.Day) })
	return out
}

func wantUsageDays(t *testing.T, what string, got, want []store.UsageDay) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d days %+v, want %d %+v", what, len(got), got, len(want), want)
	}
	for i := range want {
		if !got[i].Day.Equal(want[i].Day) || got[i].Capsules != want[i].Capsules || got[i].UsageTotals != want[i].UsageTotals {
			t.Errorf("%s: day %d is %+v, want %+v", what, i, got[i], want[i])
		}
	}
}

func testUsageRollup(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := usageSamples("ua", 0, 1, 2), usageSamples("ub", 1)
	all := append(slices.Clone(a), b...)
	if err := s.AddUsageSamples(ctx, all); err != nil {
		t.Fatalf("AddUsageSamples: %v", err)
	}
	// The same capsule at the same second again, with other values: a
	// retried pass, left out.
	dup := a[0]
	dup.Seconds, dup.VCPUs, dup.CPUMillis = 999, 64, 1e9
	if err := s.AddUsageSamples(ctx, []store.UsageSample{dup}); err != nil {
		t.Fatalf("AddUsageSamples of a duplicate: %v", err)
	}
	if _, ok, err := s.LastUsageRollup(ctx); err != nil || ok {
		t.Fatalf("LastUsageRollup before any: ok %v, err %v", ok, err)
	}
	for _, team := range []string{"ua", "ub"} {
		live, err := s.LiveUsage(ctx, team, day(0), day(3))
		if err != nil {
			t.Fatal(err)
		}
		wantUsageDays(t, "live usage of "+team, live, expectedUsage(all, team))
	}
	for _, d := range []int{0, 1, 2} {
		if rolled, err := s.RollUsageDay(ctx, day(d)); err != nil || !rolled {
			t.Fatalf("RollUsageDay(%s): %v, %v", day(d), rolled, err)
		}
	}
	check := func(when string) {
		t.Helper()
		for _, team := range []string{"ua", "ub"} {
			got, err := s.UsageDays(ctx, team, day(0), day(2))
			if err != nil {
				t.Fatal(err)
			}
			wantUsageDays(t, when+": rolled usage of "+team, got, expectedUsage(all, team))
		}
		if got, err := s.UsageDays(ctx, "uc", day(0), day(2)); err != nil || len(got) != 0 {
			t.Errorf("%s: usage of a team without samples: %v, %v", when, got, err)
		}
		// A range selects its days only, bounds included.
		got, err := s.UsageDays(ctx, "ua", day(1), day(1))
		if err != nil {
			t.Fatal(err)
		}
		wantUsageDays(t, when+": day 1 of ua", got, expectedUsage(all, "ua")[1:2])
	}
	check("rolled once")
	// Idempotent: rolling every day again, in another order, changes
	// nothing.
	for _, d := range []int{1, 0, 2, 1} {
		if _, err := s.RollUsageDay(ctx, day(d)); err != nil {
			t.Fatal(err)
		}
	}
	check("rolled again")
	// The last day rolled does not move back; a day without samples is
	// not rolled.
	if last, ok, err := s.LastUsageRollup(ctx); err != nil || !ok || !last.Equal(day(2)) {
		t.Errorf("LastUsageRollup = %s, %v, %v; want %s", last, ok, err, day(2))
	}
	if rolled, err := s.RollUsageDay(ctx, day(5)); err != nil || rolled {
		t.Errorf("RollUsageDay of a day without samples: %v, %v; want not rolled", rolled, err)
	}
	if last, _, _ := s.LastUsageRollup(ctx); !last.Equal(day(2)) {
		t.Errorf("LastUsageRollup after rolling an empty day = %s, want %s", last, day(2))
	}
}

func testUsageMissedDays(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Days 2 and 6 have no samples (no capsule ran, or no control plane);
	// day 5 is today.
	samples := usageSamples("ua", 0, 1, 3, 4, 5)
	if err := s.AddUsageSamples(ctx, samples); err != nil {
		t.Fatal(err)
	}
	rolled, err := store.RollUsage(ctx, s, day(5).Add(3*time.Hour))
	if err != nil {
		t.Fatalf("RollUsage: %v", err)
	}
	if want := []time.Time{day(0), day(1), day(3), day(4)}; !slices.EqualFunc(rolled, want, time.Time.Equal) {
		t.Fatalf("RollUsage rolled %v, want the completed days with samples %v", rolled, want)
	}
	got, err := s.UsageDays(ctx, "ua", day(0), day(10))
	if err != nil {
		t.Fatal(err)
	}
	expected := expectedUsage(samples, "ua")
	wantUsageDays(t, "rolled days", got, expected[:4])
	if again, err := store.RollUsage(ctx, s, day(5).Add(4*time.Hour)); err != nil || len(again) != 0 {
		t.Errorf("RollUsage again the same day: rolled %v, %v; want nothing", again, err)
	}
	// The control plane was down for days 6 and 7: the next rollup rolls
	// day 5, which has samples, and nothing of the empty days.
	rolled, err = store.RollUsage(ctx, s, day(8))
	if err != nil || !slices.EqualFunc(rolled, []time.Time{day(5)}, time.Time.Equal) {
		t.Fatalf("RollUsage after days down: rolled %v, %v; want %v", rolled, err, day(5))
	}
	got, _ = s.UsageDays(ctx, "ua", day(0), day(10))
	wantUsageDays(t, "rolled days after the down time", got, expected)
	if last, _, _ := s.LastUsageRollup(ctx); !last.Equal(day(5)) {
		t.Errorf("LastUsageRollup = %s, want %s", last, day(5))
	}
}

func testUsageRetention(t *testing.T, s store.Store) {
	ctx := t.Context()
	samples := usageSamples("ua", 0, 1, 2, 3, 4, 5, 6, 7)
	if err := s.AddUsageSamples(ctx, samples); err != nil {
		t.Fatal(err)
	}
	// Nothing was rolled: nothing may go.
	if n, err := store.ExpireUsage(ctx, s, day(30), 2); err != nil || n != 0 {
		t.Fatalf("ExpireUsage before any rollup: deleted %d, %v; want none", n, err)
	}
	if _, err := store.RollUsage(ctx, s, day(5)); err != nil { // rolls 0 to 4
		t.Fatal(err)
	}
	before := func(d time.Time) (n int64) {
		for _, u := range samples {
			if u.At.Before(d) {
				n++
			}
		}
		return n
	}
	// Two days kept before today (day 5): days 0, 1 and 2 go.
	n, err := store.ExpireUsage(ctx, s, day(5).Add(time.Hour), 2)
	if err != nil || n != before(day(3)) {
		t.Fatalf("ExpireUsage(today %s, 2 days) deleted %d, %v; want %d (the samples before %s)", day(5), n, err, before(day(3)), day(3))
	}
	if first, ok, err := s.FirstUsageSample(ctx, time.Time{}); err != nil || !ok || !first.Equal(day(3)) {
		t.Errorf("first sample after the retention: %s, %v, %v; want %s", first, ok, err, day(3))
	}
	// The daily rows stay, and a day whose samples went is not rolled
	// again into nothing.
	if rolled, err := s.RollUsageDay(ctx, day(1)); err != nil || rolled {
		t.Errorf("RollUsageDay of an expired day: %v, %v; want not rolled", rolled, err)
	}
	got, err := s.UsageDays(ctx, "ua", day(0), day(10))
	if err != nil {
		t.Fatal(err)
	}
	wantUsageDays(t, "rolled days after the retention", got, expectedUsage(samples, "ua")[:5])
	// Long after, with days 5 to 7 never rolled: their samples stay.
	n, err = store.ExpireUsage(ctx, s, day(40), 2)
	if err != nil || n != before(day(5))-before(day(3)) {
		t.Fatalf("ExpireUsage with days not rolled: deleted %d, %v; want %d (days 3 and 4 only)", n, err, before(day(5))-before(day(3)))
	}
	if first, _, _ := s.FirstUsageSample(ctx, time.Time{}); !first.Equal(day(5)) {
		t.Errorf("first sample kept = %s, want %s (the first day not rolled)", first, day(5))
	}
}

func testUsageHours(t *testing.T, s store.Store) {
	ctx := t.Context()
	samples := append(usageSamples("ua", 0, 1), usageSamples("ub", 1)...)
	if err := s.AddUsageSamples(ctx, samples); err != nil {
		t.Fatal(err)
	}
	live := func(when string) {
		t.Helper()
		for _, team := range []string{"ua", "ub"} {
			got, err := s.LiveUsage(ctx, team, day(0), day(2))
			if err != nil {
				t.Fatal(err)
			}
			wantUsageDays(t, when+": live usage of "+team, got, expectedUsage(samples, team))
		}
	}
	live("no hour rolled")
	// At 05:30 of day 1 the completed hours with samples are day 0's
	// 00:00, 07:00 and 23:00 and day 1's 00:00 (usageSamples' times).
	now := day(1).Add(5*time.Hour + 30*time.Minute)
	rolled, err := store.RollUsageHours(ctx, s, now)
	if err != nil {
		t.Fatalf("RollUsageHours: %v", err)
	}
	want := []time.Time{day(0), day(0).Add(7 * time.Hour), day(0).Add(23 * time.Hour), day(1)}
	if !slices.EqualFunc(rolled, want, time.Time.Equal) {
		t.Fatalf("RollUsageHours at %s rolled %v, want %v", now, rolled, want)
	}
	if last, ok, err := s.LastUsageHour(ctx); err != nil || !ok || !last.Equal(day(1)) {
		t.Errorf("LastUsageHour = %s, %v, %v; want %s", last, ok, err, day(1))
	}
	live("hours rolled up to day 1 00:00")
	// Rolling an hour again changes nothing; a later pass in an hour
	// not rolled yet is read from the samples.
	if _, err := s.RollUsageHour(ctx, day(0).Add(7*time.Hour)); err != nil {
		t.Fatal(err)
	}
	more := []store.UsageSample{{TeamID: "ua", CapsuleID: "ua-new", At: day(1).Add(5 * time.Hour), Seconds: 30, VCPUs: 8, MemoryMB: 4096, DiskMB: 100, CPUMillis: 7}}
	if err := s.AddUsageSamples(ctx, more); err != nil {
		t.Fatal(err)
	}
	samples = append(samples, more...)
	live("an hour rolled again and a new sample")
	if again, err := store.RollUsageHours(ctx, s, now); err != nil || len(again) != 0 {
		t.Errorf("RollUsageHours again in the same hour: %v, %v; want nothing", again, err)
	}
	// The retention takes the hours and the capsules' days with the
	// samples.
	if _, err := store.RollUsage(ctx, s, day(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ExpireUsage(ctx, s, day(3), 1); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LiveUsage(ctx, "ua", day(0), day(2)); err != nil || len(got) != 0 {
		t.Errorf("live usage after the retention: %+v, %v; want none", got, err)
	}
}
