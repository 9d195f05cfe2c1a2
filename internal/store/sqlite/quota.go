package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// CreateCapsuleWithin inserts c if the team's live capsules plus c stay
// within its limits. The count and the insert share one write transaction,
// and SQLite has one writer (Open's write pool has one connection and
// begins IMMEDIATE), so concurrent creates are admitted one at a time.
func (s *Store) CreateCapsuleWithin(ctx context.Context, c store.Capsule, q store.Quota) error {
	return s.createCapsule(ctx, c, func(tx *sql.Tx) error {
		l, err := teamLimits(ctx, tx, c.TeamID)
		if err != nil {
			return err
		}
		var u store.Usage
		err = tx.QueryRowContext(ctx, `
			SELECT COUNT(*), COALESCE(SUM(vcpus), 0), COALESCE(SUM(memory_mb), 0)
			FROM capsules WHERE team_id = ? AND status NOT IN ('stopped', 'error')`, c.TeamID).
			Scan(&u.Capsules, &u.VCPUs, &u.MemoryMB)
		if err != nil {
			return fmt.Errorf("usage of team %s: %w", c.TeamID, kindOf(err))
		}
		return l.Apply(q).Admit(c.TeamID, u, c)
	})
}

// TeamLimits returns the team's own limits; no row is every default.
func (s *Store) TeamLimits(ctx context.Context, teamID string) (store.TeamLimits, error) {
	l, err := teamLimits(ctx, s.read, teamID)
	if err != nil {
		return store.TeamLimits{}, fmt.Errorf("limits of team %s: %w", teamID, err)
	}
	return l, nil
}

func teamLimits(ctx context.Context, q querier, teamID string) (store.TeamLimits, error) {
	var capsules, vcpus, memory sql.NullInt64
	err := q.QueryRowContext(ctx, "SELECT capsules, vcpus, memory_mb FROM team_limits WHERE team_id = ?", teamID).
		Scan(&capsules, &vcpus, &memory)
	if errors.Is(err, sql.ErrNoRows) {
		return store.TeamLimits{}, nil
	}
	if err != nil {
		return store.TeamLimits{}, kindOf(err)
	}
	return store.TeamLimits{Capsules: intPtr(capsules), VCPUs: intPtr(vcpus), MemoryMB: intPtr(memory)}, nil
}

// SetTeamLimits replaces the team's own limits.
func (s *Store) SetTeamLimits(ctx context.Context, teamID string, l store.TeamLimits) error {
	_, err := s.write.ExecContext(ctx, `
		INSERT INTO team_limits (team_id, capsules, vcpus, memory_mb) VALUES (?, ?, ?, ?)
		ON CONFLICT (team_id) DO UPDATE SET capsules = excluded.capsules, vcpus = excluded.vcpus, memory_mb = excluded.memory_mb`,
		teamID, nullInt(l.Capsules), nullInt(l.VCPUs), nullInt(l.MemoryMB))
	if err = kindOf(err); errors.Is(err, errdefs.ErrNotFound) {
		return errdefs.NotFound("team %s not found", teamID)
	}
	if err != nil {
		return fmt.Errorf("set limits of team %s: %w", teamID, err)
	}
	return nil
}

func intPtr(v sql.NullInt64) *int {
	if !v.Valid {
		return nil
	}
	n := int(v.Int64)
	return &n
}

func nullInt(p *int) sql.NullInt64 {
	if p == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: int64(*p), Valid: true}
}
