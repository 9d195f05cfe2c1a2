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
		var id string
		err := tx.row(ctx, "SELECT id FROM teams WHERE id = ? "+s.d.RowLock, c.TeamID).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return errdefs.NotFound("team %s not found", c.TeamID)
		}
		if err != nil {
			return fmt.Errorf("lock team %s: %w", c.TeamID, s.d.Kind(err))
		}
		l, err := teamLimits(ctx, tx, c.TeamID)
		if err != nil {
			return err
		}
		var u store.Usage
		err = tx.row(ctx, `
			SELECT COUNT(*), COALESCE(SUM(vcpus), 0), COALESCE(SUM(memory_mb), 0)
			FROM capsules WHERE team_id = ? AND status NOT IN ('stopped', 'error')`, c.TeamID).
			Scan(&u.Capsules, &u.VCPUs, &u.MemoryMB)
		if err != nil {
			return fmt.Errorf("usage of team %s: %w", c.TeamID, s.d.Kind(err))
		}
		return l.Apply(q).Admit(c.TeamID, u, c)
	})
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
	var capsules, vcpus, memory sql.NullInt64
	err := c.row(ctx, "SELECT capsules, vcpus, memory_mb FROM team_limits WHERE team_id = ?", teamID).
		Scan(&capsules, &vcpus, &memory)
	if errors.Is(err, sql.ErrNoRows) {
		return store.TeamLimits{}, nil
	}
	if err != nil {
		return store.TeamLimits{}, c.d.Kind(err)
	}
	return store.TeamLimits{Capsules: intPtr(capsules), VCPUs: intPtr(vcpus), MemoryMB: intPtr(memory)}, nil
}

// SetTeamLimits replaces the team's own limits.
func (s *Store) SetTeamLimits(ctx context.Context, teamID string, l store.TeamLimits) error {
	_, err := s.writer().exec(ctx, `
		INSERT INTO team_limits (team_id, capsules, vcpus, memory_mb) VALUES (?, ?, ?, ?)
		ON CONFLICT (team_id) DO UPDATE SET capsules = excluded.capsules, vcpus = excluded.vcpus, memory_mb = excluded.memory_mb`,
		teamID, nullInt(l.Capsules), nullInt(l.VCPUs), nullInt(l.MemoryMB))
	if errors.Is(err, errdefs.ErrNotFound) {
		return errdefs.NotFound("team %s not found", teamID)
	}
	if err != nil {
		return fmt.Errorf("set limits of team %s: %w", teamID, err)
	}
	return nil
}
