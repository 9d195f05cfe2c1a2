package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// CreateTeam inserts t and makes the user owner its owner, in one
// transaction: a team never exists without an owner. An unknown owner is
// ErrNotFound and leaves no team behind.
func (s *Store) CreateTeam(ctx context.Context, t store.Team, owner string) error {
	if owner == "" {
		return errdefs.Invalid("create team %s: no owner", t.ID)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO teams (id, name, created_at) VALUES ($1, $2, $3)",
			t.ID, t.Name, t.CreatedAt)
		if err != nil {
			return kindOf(err)
		}
		_, err = tx.Exec(ctx, "INSERT INTO team_members (team_id, user_id, role) VALUES ($1, $2, $3)",
			t.ID, owner, string(store.RoleOwner))
		if err = kindOf(err); errors.Is(err, errdefs.ErrNotFound) {
			return errdefs.NotFound("owner %s: user not found", owner)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create team %s: %w", t.ID, err)
	}
	return nil
}

// GetTeam returns the team with id.
func (s *Store) GetTeam(ctx context.Context, id string) (store.Team, error) {
	t := store.Team{ID: id}
	err := s.pool.QueryRow(ctx, "SELECT name, created_at FROM teams WHERE id = $1", id).
		Scan(&t.Name, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Team{}, errdefs.NotFound("team %s not found", id)
	}
	if err != nil {
		return store.Team{}, fmt.Errorf("get team %s: %w", id, err)
	}
	return t, nil
}

// TeamsOfUser lists the teams of userID, oldest team first. An unknown
// user belongs to no team.
func (s *Store) TeamsOfUser(ctx context.Context, userID string) ([]store.Membership, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT t.id, t.name, t.created_at, m.role
		FROM team_members m JOIN teams t ON t.id = m.team_id
		WHERE m.user_id = $1
		ORDER BY t.created_at, t.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("teams of user %s: %w", userID, err)
	}
	ms, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Membership, error) {
		var m store.Membership
		err := row.Scan(&m.Team.ID, &m.Team.Name, &m.Team.CreatedAt, &m.Role)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("teams of user %s: %w", userID, err)
	}
	return ms, nil
}
