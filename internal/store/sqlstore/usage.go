package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"nestbox.dev/internal/store"
)

// Usage: samples keep their time as Unix seconds and their sizes in MiB,
// plain integers in both databases, so that the SQL below is the same for
// both and period arithmetic is integer division (at / 86400 is the day
// of a sample, at / 3600 its hour). Days of usage_daily are written
// store.UsageDayLayout; usage_hourly and usage_capsule_days number hours
// and days from the Unix epoch, as usage_rollup does.

// usageBatch is how many samples one INSERT carries: 10 parameters each,
// well under both databases' limits on parameters per statement.
const usageBatch = 500

// usageTotals are the sums of samples, in the order of usageTotalColumns.
const usageTotals = `CAST(SUM(vcpus * seconds) AS BIGINT),
	CAST(SUM(memory_mb * seconds) AS BIGINT),
	CAST(SUM(disk_mb * seconds) AS BIGINT),
	CAST(SUM(cpu_ms) AS BIGINT),
	CAST(SUM(memory_used_mb * seconds) AS BIGINT),
	CAST(SUM(disk_used_mb * seconds) AS BIGINT)`

const usageTotalColumns = `vcpu_seconds, memory_mb_seconds, disk_mb_seconds, cpu_ms, memory_used_mb_seconds, disk_used_mb_seconds`

// AddUsageSamples inserts the samples, and their capsules' days, in
// batches, in one transaction.
func (s *Store) AddUsageSamples(ctx context.Context, samples []store.UsageSample) error {
	if len(samples) == 0 {
		return nil
	}
	type capsuleDay struct {
		team, capsule string
		day           int64
	}
	days := map[capsuleDay]bool{}
	for _, u := range samples {
		days[capsuleDay{u.TeamID, u.CapsuleID, u.At.Unix() / 86400}] = true
	}
	return s.inTx(ctx, func(tx conn) error {
		for rest := samples; len(rest) > 0; {
			n := min(len(rest), usageBatch)
			var q strings.Builder
			q.WriteString(`INSERT INTO usage_samples (team_id, at, capsule_id, seconds, vcpus, memory_mb, disk_mb, cpu_ms, memory_used_mb, disk_used_mb) VALUES `)
			args := make([]any, 0, n*10)
			for i, u := range rest[:n] {
				if i > 0 {
					q.WriteString(", ")
				}
				q.WriteString("(" + placeholders(10) + ")")
				args = append(args, u.TeamID, u.At.Unix(), u.CapsuleID, u.Seconds, u.VCPUs, u.MemoryMB, u.DiskMB, u.CPUMillis, u.MemoryUsedMB, u.DiskUsedMB)
			}
			q.WriteString(" ON CONFLICT (team_id, at, capsule_id) DO NOTHING")
			if _, err := tx.exec(ctx, q.String(), args...); err != nil {
				return fmt.Errorf("add usage samples: %w", err)
			}
			rest = rest[n:]
		}
		var q strings.Builder
		args := make([]any, 0, 3*min(len(days), usageBatch))
		flush := func() error {
			if len(args) == 0 {
				return nil
			}
			_, err := tx.exec(ctx, `INSERT INTO usage_capsule_days (team_id, day, capsule_id) VALUES `+q.String()+` ON CONFLICT (team_id, day, capsule_id) DO NOTHING`, args...)
			q.Reset()
			args = args[:0]
			if err != nil {
				return fmt.Errorf("add usage samples: capsules' days: %w", err)
			}
			return nil
		}
		for d := range days {
			if len(args) > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?)")
			args = append(args, d.team, d.day, d.capsule)
			if len(args) == 3*usageBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return flush()
	})
}

// RollUsageDay replaces the day's rows with sums of its samples, in one
// transaction with the record of the last day rolled.
func (s *Store) RollUsageDay(ctx context.Context, day time.Time) (bool, error) {
	day = store.StartOfDay(day)
	start, end := day.Unix(), day.AddDate(0, 0, 1).Unix()
	name := day.Format(store.UsageDayLayout)
	rolled, err := s.rollUsage(ctx, "day", start/86400, start, end, func(tx conn) error {
		if _, err := tx.exec(ctx, `DELETE FROM usage_daily WHERE day = ?`, name); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `INSERT INTO usage_daily (team_id, day, capsules, `+usageTotalColumns+`)
			SELECT team_id, ?, COUNT(DISTINCT capsule_id), `+usageTotals+`
			FROM usage_samples WHERE at >= ? AND at < ? GROUP BY team_id`, name, start, end)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("roll usage of %s: %w", name, err)
	}
	return rolled, nil
}

// RollUsageHour replaces the hour's rows with sums of its samples, in one
// transaction with the record of the last hour rolled.
func (s *Store) RollUsageHour(ctx context.Context, hour time.Time) (bool, error) {
	start := hour.UTC().Truncate(time.Hour).Unix()
	end, n := start+3600, start/3600
	rolled, err := s.rollUsage(ctx, "hour", n, start, end, func(tx conn) error {
		if _, err := tx.exec(ctx, `DELETE FROM usage_hourly WHERE hour = ?`, n); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `INSERT INTO usage_hourly (team_id, hour, `+usageTotalColumns+`)
			SELECT team_id, ?, `+usageTotals+`
			FROM usage_samples WHERE at >= ? AND at < ? GROUP BY team_id`, n, start, end)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("roll usage of hour %s: %w", hour.UTC().Truncate(time.Hour).Format(time.RFC3339), err)
	}
	return rolled, nil
}

// rollUsage runs replace, in a transaction that then records period n as
// the last of its kind rolled (unless a later one is), if the samples in
// [start, end) are not none; it reports whether they were not.
func (s *Store) rollUsage(ctx context.Context, kind string, n, start, end int64, replace func(tx conn) error) (bool, error) {
	rolled := false
	err := s.inTx(ctx, func(tx conn) error {
		var one int
		err := tx.row(ctx, `SELECT 1 FROM usage_samples WHERE at >= ? AND at < ? LIMIT 1`, start, end).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return s.d.Kind(err)
		}
		if err := replace(tx); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO usage_rollup (name, last) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET last = excluded.last WHERE usage_rollup.last < excluded.last`, kind, n); err != nil {
			return err
		}
		rolled = true
		return nil
	})
	return rolled, err
}

// LastUsageRollup reads the day of usage_rollup.
func (s *Store) LastUsageRollup(ctx context.Context) (time.Time, bool, error) {
	n, ok, err := s.lastRolled(ctx, "day")
	if err != nil {
		return time.Time{}, false, fmt.Errorf("last usage rollup: %w", err)
	}
	return time.Unix(n*86400, 0).UTC(), ok, nil
}

// LastUsageHour reads the hour of usage_rollup.
func (s *Store) LastUsageHour(ctx context.Context) (time.Time, bool, error) {
	n, ok, err := s.lastRolled(ctx, "hour")
	if err != nil {
		return time.Time{}, false, fmt.Errorf("last usage hour rolled: %w", err)
	}
	return time.Unix(n*3600, 0).UTC(), ok, nil
}

func (s *Store) lastRolled(ctx context.Context, kind string) (int64, bool, error) {
	var n int64
	err := s.reader().row(ctx, `SELECT last FROM usage_rollup WHERE name = ?`, kind).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, s.d.Kind(err)
	}
	return n, true, nil
}

// FirstUsageSample reads the index on at.
func (s *Store) FirstUsageSample(ctx context.Context, t time.Time) (time.Time, bool, error) {
	var at sql.NullInt64
	if err := s.reader().row(ctx, `SELECT MIN(at) FROM usage_samples WHERE at >= ?`, t.Unix()).Scan(&at); err != nil {
		return time.Time{}, false, fmt.Errorf("first usage sample: %w", s.d.Kind(err))
	}
	if !at.Valid {
		return time.Time{}, false, nil
	}
	return time.Unix(at.Int64, 0).UTC(), true, nil
}

// DeleteUsageSamples is the retention: samples, hourly sums and
// capsules' days before t, in one transaction.
func (s *Store) DeleteUsageSamples(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx conn) error {
		res, err := tx.exec(ctx, `DELETE FROM usage_samples WHERE at < ?`, before.Unix())
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `DELETE FROM usage_hourly WHERE hour < ?`, before.Unix()/3600); err != nil {
			return err
		}
		_, err = tx.exec(ctx, `DELETE FROM usage_capsule_days WHERE day < ?`, before.Unix()/86400)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete usage samples: %w", err)
	}
	return n, nil
}

// UsageDays reads a team's rolled days.
func (s *Store) UsageDays(ctx context.Context, teamID string, from, to time.Time) ([]store.UsageDay, error) {
	rows, err := s.reader().query(ctx, `SELECT day, capsules, `+usageTotalColumns+` FROM usage_daily
		WHERE team_id = ? AND day >= ? AND day <= ? ORDER BY day`,
		teamID, store.StartOfDay(from).Format(store.UsageDayLayout), store.StartOfDay(to).Format(store.UsageDayLayout))
	if err != nil {
		return nil, fmt.Errorf("usage days of team %s: %w", teamID, err)
	}
	days, err := collect(rows, func(r scanner) (store.UsageDay, error) {
		var name string
		var d store.UsageDay
		err := r.Scan(append([]any{&name, &d.Capsules}, totalsDest(&d.UsageTotals)...)...)
		if err == nil {
			d.Day, err = time.Parse(store.UsageDayLayout, name)
		}
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("usage days of team %s: %w", teamID, err)
	}
	return days, nil
}

// LiveUsage sums, per day, a team's hours rolled before the last hour
// rolled and its samples after, so that a day's query reads at most 24
// hourly rows and an hour or two of samples; the capsules of each day are
// counted from usage_capsule_days.
func (s *Store) LiveUsage(ctx context.Context, teamID string, from, to time.Time) ([]store.UsageDay, error) {
	fail := func(err error) ([]store.UsageDay, error) {
		return nil, fmt.Errorf("live usage of team %s: %w", teamID, err)
	}
	start, end := from.Unix(), to.Unix()
	last, ok, err := s.lastRolled(ctx, "hour")
	if err != nil {
		return fail(err)
	}
	// cut is where the samples take over from the hours: the end of the
	// last hour rolled, within [start, end].
	cut := start
	if ok {
		cut = min(max((last+1)*3600, start), end)
	}
	rows, err := s.reader().query(ctx, `SELECT d, `+sumOf(usageTotalColumns)+` FROM (
			SELECT hour / 24 AS d, `+usageTotalColumns+` FROM usage_hourly WHERE team_id = ? AND hour >= ? AND hour < ?
			UNION ALL
			SELECT at / 86400, vcpus * seconds, memory_mb * seconds, disk_mb * seconds, cpu_ms, memory_used_mb * seconds, disk_used_mb * seconds
			FROM usage_samples WHERE team_id = ? AND at >= ? AND at < ?
		) AS parts GROUP BY d ORDER BY d`,
		teamID, start/3600, cut/3600, teamID, cut, end)
	if err != nil {
		return fail(err)
	}
	days, err := collect(rows, func(r scanner) (store.UsageDay, error) {
		var n int64
		var d store.UsageDay
		err := r.Scan(append([]any{&n}, totalsDest(&d.UsageTotals)...)...)
		d.Day = time.Unix(n*86400, 0).UTC()
		return d, err
	})
	if err != nil {
		return fail(err)
	}
	rows, err = s.reader().query(ctx, `SELECT day, COUNT(*) FROM usage_capsule_days
		WHERE team_id = ? AND day >= ? AND day < ? GROUP BY day`, teamID, start/86400, (end+86399)/86400)
	if err != nil {
		return fail(err)
	}
	type count struct{ day, n int64 }
	counts, err := collect(rows, func(r scanner) (count, error) {
		var c count
		return c, r.Scan(&c.day, &c.n)
	})
	if err != nil {
		return fail(err)
	}
	byDay := map[int64]int{}
	for _, c := range counts {
		byDay[c.day] = int(c.n)
	}
	for i := range days {
		days[i].Capsules = byDay[days[i].Day.Unix()/86400]
	}
	return days, nil
}

// sumOf is "CAST(SUM(a) AS BIGINT), ..." for the columns "a, b, ...".
func sumOf(columns string) string {
	var out []string
	for _, c := range strings.Split(columns, ", ") {
		out = append(out, "CAST(SUM("+c+") AS BIGINT)")
	}
	return strings.Join(out, ", ")
}

// totalsDest is where the columns of usageTotalColumns scan to.
func totalsDest(t *store.UsageTotals) []any {
	return []any{&t.VCPUSeconds, &t.MemoryMBSeconds, &t.DiskMBSeconds, &t.CPUMillis, &t.MemoryUsedMBSeconds, &t.DiskUsedMBSeconds}
}
