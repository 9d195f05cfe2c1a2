package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// CreateCapsuleWithin inserts c if the team's live capsules plus c stay
// within its limits. The transaction first locks the team's row (SELECT
// ... FOR UPDATE), so concurrent creates of one team, from any number of
// control planes, count and insert one at a time; under READ COMMITTED
// each count then sees the capsules the previous holder committed.
// Creates of different teams do not wait for each other.
func (s *Store) CreateCapsuleWithin(ctx context.Context, c store.Capsule, q store.Quota) error {
	return s.createCapsule(ctx, c, func(tx pgx.Tx) error {
		var id string
		err := tx.QueryRow(ctx, "SELECT id FROM teams WHERE id = $1 FOR UPDATE", c.TeamID).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return errdefs.NotFound("team %s not found", c.TeamID)
		}
		if err != nil {
			return fmt.Errorf("lock team %s: %w", c.TeamID, kindOf(err))
		}
		l, err := teamLimits(ctx, tx, c.TeamID)
		if err != nil {
			return err
		}
		var u store.Usage
		err = tx.QueryRow(ctx, `
			SELECT COUNT(*), COALESCE(SUM(vcpus), 0), COALESCE(SUM(memory_mb), 0)
			FROM capsules WHERE team_id = $1 AND status NOT IN ('stopped', 'error')`, c.TeamID).
			Scan(&u.Capsules, &u.VCPUs, &u.MemoryMB)
		if err != nil {
			return fmt.Errorf("usage of team %s: %w", c.TeamID, kindOf(err))
		}
		return l.Apply(q).Admit(c.TeamID, u, c)
	})
}

// TeamLimits returns the team's own limits; no row is every default.
func (s *Store) TeamLimits(ctx context.Context, teamID string) (store.TeamLimits, error) {
	l, err := teamLimits(ctx, s.pool, teamID)
	if err != nil {
		return store.TeamLimits{}, fmt.Errorf("limits of team %s: %w", teamID, err)
	}
	return l, nil
}

func teamLimits(ctx context.Context, q querier, teamID string) (store.TeamLimits, error) {
	var l store.TeamLimits
	err := q.QueryRow(ctx, "SELECT capsules, vcpus, memory_mb FROM team_limits WHERE team_id = $1", teamID).
		Scan(&l.Capsules, &l.VCPUs, &l.MemoryMB)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.TeamLimits{}, nil
	}
	if err != nil {
		return store.TeamLimits{}, kindOf(err)
	}
	return l, nil
}

// SetTeamLimits replaces the team's own limits.
func (s *Store) SetTeamLimits(ctx context.Context, teamID string, l store.TeamLimits) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO team_limits (team_id, capsules, vcpus, memory_mb) VALUES ($1, $2, $3, $4)
		ON CONFLICT (team_id) DO UPDATE SET capsules = excluded.capsules, vcpus = excluded.vcpus, memory_mb = excluded.memory_mb`,
		teamID, l.Capsules, l.VCPUs, l.MemoryMB)
	if err = kindOf(err); errors.Is(err, errdefs.ErrNotFound) {
		return errdefs.NotFound("team %s not found", teamID)
	}
	if err != nil {
		return fmt.Errorf("set limits of team %s: %w", teamID, err)
	}
	return nil
}
