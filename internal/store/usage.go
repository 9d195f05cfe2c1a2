package store

import (
	"context"
	"time"
)

// Metering is the part of Store behind usage accounting (internal/usage):
// the samples the usage sampler takes of running capsules, the daily
// rollup of them per team, and the retention. Days are UTC; a sample
// belongs to the day of its time. Errors wrap the kinds of
// internal/errdefs like Store's.
type Metering interface {
	// AddUsageSamples stores samples, and records each sample's capsule
	// as one that ran on its day; a sample of a capsule at a second that
	// already has one is left out (a pass retried is not counted twice).
	AddUsageSamples(ctx context.Context, samples []UsageSample) error
	// RollUsageDay computes every team's usage of the UTC day that starts
	// at day (midnight UTC) from that day's samples, replacing the day's
	// rows, and records day as rolled if it is after the last one rolled:
	// one transaction, so rolling a day again gives the same rows. A day
	// without samples is left as it is (its samples may have gone with
	// the retention) and rolled is false.
	RollUsageDay(ctx context.Context, day time.Time) (rolled bool, err error)
	// RollUsageHour is RollUsageDay for the hour that starts at hour:
	// the partial sums LiveUsage reads instead of the hour's samples.
	RollUsageHour(ctx context.Context, hour time.Time) (rolled bool, err error)
	// LastUsageRollup is the latest day RollUsageDay rolled; ok is false
	// when none was.
	LastUsageRollup(ctx context.Context) (day time.Time, ok bool, err error)
	// LastUsageHour is the latest hour RollUsageHour rolled; ok is false
	// when none was.
	LastUsageHour(ctx context.Context) (hour time.Time, ok bool, err error)
	// FirstUsageSample is the time of the earliest sample taken at or
	// after t; ok is false when there is none.
	FirstUsageSample(ctx context.Context, t time.Time) (at time.Time, ok bool, err error)
	// DeleteUsageSamples deletes the samples taken before t, and the
	// hourly sums and capsule records of before t (t is a midnight), and
	// returns how many samples went.
	DeleteUsageSamples(ctx context.Context, before time.Time) (int64, error)
	// UsageDays returns a team's rolled days from from to to (both
	// midnight UTC, inclusive), oldest first; days without a row are
	// left out.
	UsageDays(ctx context.Context, teamID string, from, to time.Time) ([]UsageDay, error)
	// LiveUsage computes a team's usage per day in [from, to) (midnights
	// UTC), the same sums RollUsageDay makes: from the hours rolled and
	// the samples after the last hour rolled, oldest first; days without
	// samples are left out.
	LiveUsage(ctx context.Context, teamID string, from, to time.Time) ([]UsageDay, error)
}

// UsageSample is what the sampler saw of one running capsule at one time.
// At is kept to the second.
type UsageSample struct {
	TeamID    string
	CapsuleID string
	At        time.Time
	// Seconds is the running time the sample accounts for: since the
	// sampler's previous pass.
	Seconds int
	// The capsule's allocation.
	VCPUs    int
	MemoryMB int
	DiskMB   int
	// What it measured: CPU time used over Seconds, in milliseconds, and
	// the memory and disk in use at At, in MiB.
	CPUMillis    int64
	MemoryUsedMB int64
	DiskUsedMB   int64
}

// UsageDay is a team's usage of one UTC day.
type UsageDay struct {
	Day time.Time // midnight UTC
	// Capsules is how many capsules were sampled that day.
	Capsules int
	UsageTotals
}

// UsageTotals are sums over samples of their allocation (vCPUs, MiB of
// memory and of disk) times Seconds, and of what they measured.
type UsageTotals struct {
	VCPUSeconds         int64
	MemoryMBSeconds     int64
	DiskMBSeconds       int64
	CPUMillis           int64
	MemoryUsedMBSeconds int64
	DiskUsedMBSeconds   int64
}

// Add returns t plus u.
func (t UsageTotals) Add(u UsageTotals) UsageTotals {
	return UsageTotals{
		VCPUSeconds:         t.VCPUSeconds + u.VCPUSeconds,
		MemoryMBSeconds:     t.MemoryMBSeconds + u.MemoryMBSeconds,
		DiskMBSeconds:       t.DiskMBSeconds + u.DiskMBSeconds,
		CPUMillis:           t.CPUMillis + u.CPUMillis,
		MemoryUsedMBSeconds: t.MemoryUsedMBSeconds + u.MemoryUsedMBSeconds,
		DiskUsedMBSeconds:   t.DiskUsedMBSeconds + u.DiskUsedMBSeconds,
	}
}

// UsageDayLayout is how a usage day is written: YYYY-MM-DD.
const UsageDayLayout = time.DateOnly

// StartOfDay is midnight UTC of t's UTC day.
func StartOfDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// RollUsage rolls every completed day (before today's UTC day) after the
// last day rolled that has samples, oldest first, and returns the days it
// rolled. Days missed while no control plane ran are rolled this way; a
// first rollup starts at the earliest sample. Rolling is idempotent, so
// two callers at once do no harm (the usage worker holds a lease anyway).
func RollUsage(ctx context.Context, m Metering, today time.Time) ([]time.Time, error) {
	return rollCompleted(ctx, m, StartOfDay(today), m.LastUsageRollup, StartOfDay,
		func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }, m.RollUsageDay)
}

// RollUsageHours is RollUsage for the completed hours before now's.
func RollUsageHours(ctx context.Context, m Metering, now time.Time) ([]time.Time, error) {
	hour := func(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }
	return rollCompleted(ctx, m, hour(now), m.LastUsageHour, hour,
		func(t time.Time) time.Time { return t.Add(time.Hour) }, m.RollUsageHour)
}

// rollCompleted rolls the periods before end, after the last one rolled,
// that have samples: start gives a time's period, next the period after.
func rollCompleted(ctx context.Context, m Metering, end time.Time,
	last func(context.Context) (time.Time, bool, error), start, next func(time.Time) time.Time,
	roll func(context.Context, time.Time) (bool, error)) ([]time.Time, error) {
	prev, ok, err := last(ctx)
	if err != nil {
		return nil, err
	}
	var from time.Time // the earliest period that may need rolling
	if ok {
		from = next(prev)
	}
	var rolled []time.Time
	for from.Before(end) {
		at, ok, err := m.FirstUsageSample(ctx, from)
		if err != nil {
			return rolled, err
		}
		p := start(at)
		if !ok || !p.Before(end) {
			break
		}
		done, err := roll(ctx, p)
		if err != nil {
			return rolled, err
		}
		if done {
			rolled = append(rolled, p)
		}
		from = next(p)
	}
	return rolled, nil
}

// ExpireUsage deletes the samples of the days that end more than
// retentionDays before today's UTC day began, whole days only, but never
// those of a day not rolled yet: a control plane down for longer than the
// retention rolls its missed days before their samples go. It returns how
// many samples went.
func ExpireUsage(ctx context.Context, m Metering, today time.Time, retentionDays int) (int64, error) {
	cutoff := StartOfDay(today).AddDate(0, 0, -retentionDays)
	last, ok, err := m.LastUsageRollup(ctx)
	if err != nil || !ok {
		return 0, err
	}
	if after := last.AddDate(0, 0, 1); after.Before(cutoff) {
		cutoff = after
	}
	return m.DeleteUsageSamples(ctx, cutoff)
}
