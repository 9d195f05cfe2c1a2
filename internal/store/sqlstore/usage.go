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
// both and day arithmetic is integer division (at / 86400 is the day of a
// sample). Days are written store.UsageDayLayout.

// usageBatch is how many samples one INSERT carries: 10 parameters each,
// well under both databases' limits on parameters per statement.
const usageBatch = 500

// usageSums are the aggregates of a day's samples, in the order of
// usage_daily's columns after capsules.
const usageSums = `COUNT(DISTINCT capsule_id),
	CAST(SUM(vcpus * seconds) AS BIGINT),
	CAST(SUM(memory_mb * seconds) AS BIGINT),
	CAST(SUM(disk_mb * seconds) AS BIGINT),
	CAST(SUM(cpu_ms) AS BIGINT),
	CAST(SUM(memory_used_mb * seconds) AS BIGINT),
	CAST(SUM(disk_used_mb * seconds) AS BIGINT)`

const usageDailyColumns = `capsules, vcpu_seconds, memory_mb_seconds, disk_mb_seconds, cpu_ms, memory_used_mb_seconds, disk_used_mb_seconds`

// AddUsageSamples inserts the samples in batches, in one transaction.
func (s *Store) AddUsageSamples(ctx context.Context, samples []store.UsageSample) error {
	if len(samples) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx conn) error {
		for len(samples) > 0 {
			n := min(len(samples), usageBatch)
			var q strings.Builder
			q.WriteString(`INSERT INTO usage_samples (team_id, at, capsule_id, seconds, vcpus, memory_mb, disk_mb, cpu_ms, memory_used_mb, disk_used_mb) VALUES `)
			args := make([]any, 0, n*10)
			for i, u := range samples[:n] {
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
			samples = samples[n:]
		}
		return nil
	})
}

// RollUsageDay replaces the day's rows with sums of its samples, in one
// transaction with the record of the last day rolled.
func (s *Store) RollUsageDay(ctx context.Context, day time.Time) (bool, error) {
	day = store.StartOfDay(day)
	start, end := day.Unix(), day.AddDate(0, 0, 1).Unix()
	name := day.Format(store.UsageDayLayout)
	rolled := false
	err := s.inTx(ctx, func(tx conn) error {
		var n int
		if err := tx.row(ctx, `SELECT COUNT(*) FROM usage_samples WHERE at >= ? AND at < ?`, start, end).Scan(&n); err != nil {
			return s.d.Kind(err)
		}
		if n == 0 {
			return nil
		}
		if _, err := tx.exec(ctx, `DELETE FROM usage_daily WHERE day = ?`, name); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO usage_daily (team_id, day, `+usageDailyColumns+`)
			SELECT team_id, ?, `+usageSums+`
			FROM usage_samples WHERE at >= ? AND at < ? GROUP BY team_id`, name, start, end); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO usage_rollup (id, last_day) VALUES (1, ?)
			ON CONFLICT (id) DO UPDATE SET last_day = excluded.last_day WHERE usage_rollup.last_day < excluded.last_day`, name); err != nil {
			return err
		}
		rolled = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("roll usage of %s: %w", name, err)
	}
	return rolled, nil
}

// LastUsageRollup reads usage_rollup's one row.
func (s *Store) LastUsageRollup(ctx context.Context) (time.Time, bool, error) {
	var name string
	err := s.reader().row(ctx, `SELECT last_day FROM usage_rollup WHERE id = 1`).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("last usage rollup: %w", s.d.Kind(err))
	}
	day, err := time.Parse(store.UsageDayLayout, name)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("last usage rollup: bad day %q in database: %w", name, err)
	}
	return day, true, nil
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

// DeleteUsageSamples is the retention's one statement.
func (s *Store) DeleteUsageSamples(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.writer().exec(ctx, `DELETE FROM usage_samples WHERE at < ?`, before.Unix())
	if err != nil {
		return 0, fmt.Errorf("delete usage samples: %w", err)
	}
	return res.RowsAffected()
}

// UsageDays reads a team's rolled days.
func (s *Store) UsageDays(ctx context.Context, teamID string, from, to time.Time) ([]store.UsageDay, error) {
	rows, err := s.reader().query(ctx, `SELECT day, `+usageDailyColumns+` FROM usage_daily
		WHERE team_id = ? AND day >= ? AND day <= ? ORDER BY day`,
		teamID, store.StartOfDay(from).Format(store.UsageDayLayout), store.StartOfDay(to).Format(store.UsageDayLayout))
	if err != nil {
		return nil, fmt.Errorf("usage days of team %s: %w", teamID, err)
	}
	days, err := collect(rows, func(r scanner) (store.UsageDay, error) {
		var name string
		var d store.UsageDay
		err := r.Scan(append([]any{&name}, usageDest(&d)...)...)
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

// LiveUsage sums a team's samples per day as RollUsageDay does.
func (s *Store) LiveUsage(ctx context.Context, teamID string, from, to time.Time) ([]store.UsageDay, error) {
	rows, err := s.reader().query(ctx, `SELECT at / 86400, `+usageSums+` FROM usage_samples
		WHERE team_id = ? AND at >= ? AND at < ? GROUP BY at / 86400 ORDER BY at / 86400`,
		teamID, from.Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("live usage of team %s: %w", teamID, err)
	}
	days, err := collect(rows, func(r scanner) (store.UsageDay, error) {
		var n int64
		var d store.UsageDay
		err := r.Scan(append([]any{&n}, usageDest(&d)...)...)
		d.Day = time.Unix(n*86400, 0).UTC()
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("live usage of team %s: %w", teamID, err)
	}
	return days, nil
}

// usageDest is where the columns of usageDailyColumns (or usageSums) scan
// to.
func usageDest(d *store.UsageDay) []any {
	return []any{&d.Capsules, &d.VCPUSeconds, &d.MemoryMBSeconds, &d.DiskMBSeconds, &d.CPUMillis, &d.MemoryUsedMBSeconds, &d.DiskUsedMBSeconds}
}
