package usage

import (
	"context"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// The range of a report.
const (
	// MaxRangeDays is the most days one report covers.
	MaxRangeDays = 92
	// DefaultRangeDays is the range of a report that gives no bounds: the
	// days ending today.
	DefaultRangeDays = 30
)

// ParseRange reads a report's from and to (YYYY-MM-DD, UTC, both
// included) as midnights UTC. An empty to is today, an empty from the
// DefaultRangeDays ending at to. A bad date, from after to, or a range of
// more than MaxRangeDays is ErrInvalid.
func ParseRange(from, to string, now time.Time) (time.Time, time.Time, error) {
	end := store.StartOfDay(now)
	if to != "" {
		t, err := time.Parse(store.UsageDayLayout, to)
		if err != nil {
			return time.Time{}, time.Time{}, errdefs.Invalid("to %q: want a date, YYYY-MM-DD", to)
		}
		end = t
	}
	start := end.AddDate(0, 0, -(DefaultRangeDays - 1))
	if from != "" {
		t, err := time.Parse(store.UsageDayLayout, from)
		if err != nil {
			return time.Time{}, time.Time{}, errdefs.Invalid("from %q: want a date, YYYY-MM-DD", from)
		}
		start = t
	}
	if start.After(end) {
		return time.Time{}, time.Time{}, errdefs.Invalid("from %s is after to %s", start.Format(store.UsageDayLayout), end.Format(store.UsageDayLayout))
	}
	if n := days(start, end); n > MaxRangeDays {
		return time.Time{}, time.Time{}, errdefs.Invalid("%d days from %s to %s: a report covers at most %d", n, start.Format(store.UsageDayLayout), end.Format(store.UsageDayLayout), MaxRangeDays)
	}
	return start, end, nil
}

// days is how many days from start to end, both included.
func days(start, end time.Time) int { return int(end.Sub(start)/(24*time.Hour)) + 1 }

// Report is a team's usage from from to to (midnights UTC, inclusive), a
// range ParseRange accepted: the rolled days from the daily table, and the
// days after the last one rolled (today, and any completed day the hourly
// rollup has not reached) computed now (store.LiveUsage). Every day of the
// range has an entry; Live marks today, the days after it, and the
// computed days that have usage: the days that may still change.
func Report(ctx context.Context, m store.Metering, teamID string, from, to, now time.Time) (nestbox.UsageReport, error) {
	from, to = store.StartOfDay(from), store.StartOfDay(to)
	today := store.StartOfDay(now)
	byDay := map[time.Time]store.UsageDay{}
	live := map[time.Time]bool{}
	last, ok, err := m.LastUsageRollup(ctx)
	if err != nil {
		return nestbox.UsageReport{}, err
	}
	liveFrom := from
	if ok && !last.Before(from) {
		rolledTo := to
		if last.Before(to) {
			rolledTo = last
		}
		rolled, err := m.UsageDays(ctx, teamID, from, rolledTo)
		if err != nil {
			return nestbox.UsageReport{}, err
		}
		for _, d := range rolled {
			byDay[d.Day] = d
		}
		liveFrom = last.AddDate(0, 0, 1)
	}
	if !liveFrom.After(to) {
		computed, err := m.LiveUsage(ctx, teamID, liveFrom, to.AddDate(0, 0, 1))
		if err != nil {
			return nestbox.UsageReport{}, err
		}
		for _, d := range computed {
			byDay[d.Day] = d
			live[d.Day] = true
		}
	}
	for d := today; !d.After(to); d = d.AddDate(0, 0, 1) {
		live[d] = true
	}
	r := nestbox.UsageReport{From: from.Format(store.UsageDayLayout), To: to.Format(store.UsageDayLayout), Days: []nestbox.UsageDay{}}
	var total store.UsageTotals
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		u := byDay[d]
		total = total.Add(u.UsageTotals)
		r.Days = append(r.Days, nestbox.UsageDay{Date: d.Format(store.UsageDayLayout), Capsules: u.Capsules, Live: live[d], UsageAmounts: Amounts(u.UsageTotals)})
	}
	r.Total = Amounts(total)
	return r, nil
}

// Amounts converts the store's sums (MiB-seconds, CPU milliseconds) to the
// API's units (GiB-seconds, CPU seconds).
func Amounts(t store.UsageTotals) nestbox.UsageAmounts {
	return nestbox.UsageAmounts{
		VCPUSeconds:          t.VCPUSeconds,
		MemoryGiBSeconds:     float64(t.MemoryMBSeconds) / 1024,
		DiskGiBSeconds:       float64(t.DiskMBSeconds) / 1024,
		CPUSecondsUsed:       float64(t.CPUMillis) / 1000,
		MemoryUsedGiBSeconds: float64(t.MemoryUsedMBSeconds) / 1024,
		DiskUsedGiBSeconds:   float64(t.DiskUsedMBSeconds) / 1024,
	}
}
