package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// CreateCapsuleWithin inserts c if the team's live capsules plus c stay
// within its limits. The transaction first reads the team's row with the
// dialect's RowLock, so concurrent creates of one team count and insert
// one at a time: PostgreSQL locks the row (FOR UPDATE), and under READ
// COMMITTED each count then sees the capsules the previous holder
// committed, while creates of other teams do not wait; SQLite has one
// writer (the write pool's one connection, BEGIN IMMEDIATE), which admits
// every create one at a time.
func (s *Store) CreateCapsuleWithin(ctx context.Context, c store.Capsule, q store.Quota) error {
	return s.createCapsule(ctx, c, func(tx conn) error {
		l, u, err := s.lockUsage(ctx, tx, c.TeamID)
		if err != nil {
			return err
		}
		return l.Apply(q).Admit(c.TeamID, u, c)
	})
}

// lockUsage locks the team's row (see CreateCapsuleWithin) and reads its
// own limits and what it holds, inside tx.
func (s *Store) lockUsage(ctx context.Context, tx conn, teamID string) (store.TeamLimits, store.Usage, error) {
	var id string
	err := tx.row(ctx, "SELECT id FROM teams WHERE id = ? "+s.d.RowLock, teamID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return store.TeamLimits{}, store.Usage{}, errdefs.NotFound("team %s not found", teamID)
	}
	if err != nil {
		return store.TeamLimits{}, store.Usage{}, fmt.Errorf("lock team %s: %w", teamID, s.d.Kind(err))
	}
	l, err := teamLimits(ctx, tx, teamID)
	if err != nil {
		return store.TeamLimits{}, store.Usage{}, err
	}
	var u store.Usage
	var capsuleDisk, snapshotBytes int64
	err = tx.row(ctx, `
		SELECT COUNT(*), COALESCE(SUM(vcpus), 0), COALESCE(SUM(memory_mb), 0), COALESCE(SUM(disk_mb), 0)
		FROM capsules WHERE team_id = ? AND status NOT IN ('stopped', 'error')`, teamID).
		Scan(&u.Capsules, &u.VCPUs, &u.MemoryMB, &capsuleDisk)
	if err != nil {
		return l, u, fmt.Errorf("usage of team %s: %w", teamID, s.d.Kind(err))
	}
	// Each snapshot counts in whole MiB, as SnapshotDiskMB rounds it.
	err = tx.row(ctx, `
		SELECT COUNT(*), COALESCE(SUM((size_bytes + 1048575) / 1048576), 0)
		FROM snapshots WHERE team_id = ?`, teamID).Scan(&u.Snapshots, &snapshotBytes)
	if err != nil {
		return l, u, fmt.Errorf("snapshots of team %s: %w", teamID, s.d.Kind(err))
	}
	u.DiskMB = int(capsuleDisk + snapshotBytes)
	return l, u, nil
}

// TeamLimits returns the team's own limits; no row is every default.
func (s *Store) TeamLimits(ctx context.Context, teamID string) (store.TeamLimits, error) {
	l, err := teamLimits(ctx, s.reader(), teamID)
	if err != nil {
		return store.TeamLimits{}, fmt.Errorf("limits of team %s: %w", teamID, err)
	}
	return l, nil
}

func teamLimits(ctx context.Context, c conn, teamID string) (store.TeamLimits, error) {
	var capsules, vcpus, memory, snapshots, disk sql.NullInt64
	err := c.row(ctx, "SELECT capsules, vcpus, memory_mb, snapshots, disk_mb FROM team_limits WHERE team_id = ?", teamID).
		Scan(&capsules, &vcpus, &memory, &snapshots, &disk)
	if errors.Is(err, sql.ErrNoRows) {
		return store.TeamLimits{}, nil
	}
	if err != nil {
		return store.TeamLimits{}, c.d.Kind(err)
	}
	return store.TeamLimits{Capsules: intPtr(capsules), VCPUs: intPtr(vcpus), MemoryMB: intPtr(memory), Snapshots: intPtr(snapshots), DiskMB: intPtr(disk)}, nil
}

// SetTeamLimits replaces the team's own limits.
func (s *Store) SetTeamLimits(ctx context.Context, teamID string, l store.TeamLimits) error {
	_, err := s.writer().exec(ctx, `
		INSERT INTO team_limits (team_id, capsules, vcpus, memory_mb, snapshots, disk_mb) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (team_id) DO UPDATE SET capsules = excluded.capsules, vcpus = excluded.vcpus, memory_mb = excluded.memory_mb,
			snapshots = excluded.snapshots, disk_mb = excluded.disk_mb`,
		teamID, nullInt(l.Capsules), nullInt(l.VCPUs), nullInt(l.MemoryMB), nullInt(l.Snapshots), nullInt(l.DiskMB))
	if errors.Is(err, errdefs.ErrNotFound) {
		return errdefs.NotFound("team %s not found", teamID)
	}
	if err != nil {
		return fmt.Errorf("set limits of team %s: %w", teamID, err)
	}
	return nil
}
