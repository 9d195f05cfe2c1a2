package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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
	err := s.inTx(ctx, func(tx conn) error {
		_, err := tx.exec(ctx, "INSERT INTO teams (id, name, created_at) VALUES (?, ?, ?)",
			t.ID, t.Name, s.d.time(t.CreatedAt))
		if err != nil {
			return err
		}
		_, err = tx.exec(ctx, "INSERT INTO team_members (team_id, user_id, role) VALUES (?, ?, ?)",
			t.ID, owner, string(store.RoleOwner))
		if errors.Is(err, errdefs.ErrNotFound) {
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
	err := s.reader().row(ctx, "SELECT name, created_at, byoc, deleted_at FROM teams WHERE id = ?", id).
		Scan(&t.Name, s.d.timeCol(&t.CreatedAt), &t.BYOC, s.d.nullTimeCol(&t.DeletedAt))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Team{}, errdefs.NotFound("team %s not found", id)
	}
	if err != nil {
		return store.Team{}, fmt.Errorf("get team %s: %w", id, err)
	}
	return t, nil
}

// TeamsOfUser lists the teams of userID, oldest team first. An unknown
// user belongs to no team, and nobody to a deleted one.
func (s *Store) TeamsOfUser(ctx context.Context, userID string) ([]store.Membership, error) {
	rows, err := s.reader().query(ctx, `
		SELECT t.id, t.name, t.created_at, m.role
		FROM team_members m JOIN teams t ON t.id = m.team_id
		WHERE m.user_id = ? AND t.deleted_at IS NULL
		ORDER BY t.created_at, t.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("teams of user %s: %w", userID, err)
	}
	ms, err := collect(rows, func(row scanner) (store.Membership, error) {
		var m store.Membership
		err := row.Scan(&m.Team.ID, &m.Team.Name, s.d.timeCol(&m.Team.CreatedAt), &m.Role)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("teams of user %s: %w", userID, err)
	}
	return ms, nil
}
