package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// lockRow locks the row of table with id for the transaction (the
// dialect's row lock; SQLite's write transaction holds the database), so
// that counting what hangs off it and inserting one more is serialised per
// row. A missing row is ErrNotFound.
func (s *Store) lockRow(ctx context.Context, tx conn, table, id string) error {
	var got string
	err := tx.row(ctx, "SELECT id FROM "+table+" WHERE id = ? "+s.d.RowLock, id).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return errdefs.NotFound("%s %s not found", table[:len(table)-1], id)
	}
	return err
}

// CreateOwnedTeam creates t owned by owner unless owner owns max teams.
func (s *Store) CreateOwnedTeam(ctx context.Context, t store.Team, owner string, max int) error {
	if max <= 0 {
		return errdefs.Invalid("create team %s: max %d: want at least 1", t.ID, max)
	}
	err := s.inTx(ctx, func(tx conn) error {
		if err := s.lockRow(ctx, tx, "users", owner); err != nil {
			return err
		}
		var n int
		if err := tx.row(ctx, "SELECT COUNT(*) FROM team_members WHERE user_id = ? AND role = ?", owner, string(store.RoleOwner)).Scan(&n); err != nil {
			return err
		}
		if n >= max {
			return fmt.Errorf("user %s owns %d teams, its limit: %w", owner, n, errdefs.ErrExhausted)
		}
		if _, err := tx.exec(ctx, "INSERT INTO teams (id, name, created_at) VALUES (?, ?, ?)", t.ID, t.Name, s.d.time(t.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.exec(ctx, "INSERT INTO team_members (team_id, user_id, role) VALUES (?, ?, ?)", t.ID, owner, string(store.RoleOwner))
		return err
	})
	if err != nil {
		return fmt.Errorf("create team %s: %w", t.ID, err)
	}
	return nil
}

// Members lists the members of teamID, the owner first.
func (s *Store) Members(ctx context.Context, teamID string) ([]store.Member, error) {
	rows, err := s.reader().query(ctx, `
		SELECT u.id, u.email, u.name, u.admin, u.created_at, m.role
		FROM team_members m JOIN users u ON u.id = m.user_id
		WHERE m.team_id = ?
		ORDER BY CASE m.role WHEN 'owner' THEN 0 ELSE 1 END, u.id`, teamID)
	if err != nil {
		return nil, fmt.Errorf("members of team %s: %w", teamID, err)
	}
	ms, err := collect(rows, func(row scanner) (store.Member, error) {
		var m store.Member
		err := row.Scan(&m.User.ID, &m.User.Email, &m.User.Name, &m.User.Admin, s.d.timeCol(&m.User.CreatedAt), &m.Role)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("members of team %s: %w", teamID, err)
	}
	return ms, nil
}

// MemberRole is userID's role in teamID.
func (s *Store) MemberRole(ctx context.Context, teamID, userID string) (store.Role, error) {
	var r store.Role
	// A deleted team has no members who may act in it.
	err := s.reader().row(ctx, `SELECT m.role FROM team_members m JOIN teams t ON t.id = m.team_id
		WHERE m.team_id = ? AND m.user_id = ? AND t.deleted_at IS NULL`, teamID, userID).Scan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errdefs.NotFound("user %s is not a member of team %s", userID, teamID)
	}
	if err != nil {
		return "", fmt.Errorf("role of %s in team %s: %w", userID, teamID, err)
	}
	return r, nil
}

// SetMemberRole changes a non-owner's role; one conditional statement.
func (s *Store) SetMemberRole(ctx context.Context, teamID, userID string, role store.Role) error {
	if role != store.RoleAdmin && role != store.RoleMember {
		return errdefs.Invalid("role %q: want admin or member", role)
	}
	ok, err := s.execOne(ctx, "UPDATE team_members SET role = ? WHERE team_id = ? AND user_id = ? AND role <> ?",
		string(role), teamID, userID, string(store.RoleOwner))
	if err != nil {
		return fmt.Errorf("set role of %s in team %s: %w", userID, teamID, err)
	}
	if !ok {
		return s.ownerOrMissing(ctx, teamID, userID, "demoted")
	}
	return nil
}

// RemoveMember removes a non-owner and ends its sessions in the team.
func (s *Store) RemoveMember(ctx context.Context, teamID, userID string) error {
	removed := false
	err := s.inTx(ctx, func(tx conn) error {
		res, err := tx.exec(ctx, "DELETE FROM team_members WHERE team_id = ? AND user_id = ? AND role <> ?",
			teamID, userID, string(store.RoleOwner))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return err
		}
		removed = true
		_, err = tx.exec(ctx, "DELETE FROM sessions WHERE user_id = ? AND team_id = ?", userID, teamID)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove %s from team %s: %w", userID, teamID, err)
	}
	if !removed {
		return s.ownerOrMissing(ctx, teamID, userID, "removed")
	}
	return nil
}

// TransferOwnership swaps the owner's role with a member's.
func (s *Store) TransferOwnership(ctx context.Context, teamID, from, to string) error {
	if from == to {
		return errdefs.Invalid("transfer team %s: %s is the owner already", teamID, to)
	}
	err := s.inTx(ctx, func(tx conn) error {
		if err := s.lockRow(ctx, tx, "teams", teamID); err != nil {
			return err
		}
		res, err := tx.exec(ctx, "UPDATE team_members SET role = ? WHERE team_id = ? AND user_id = ? AND role = ?",
			string(store.RoleAdmin), teamID, from, string(store.RoleOwner))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return errdefs.Conflict("user %s is not the owner of team %s", from, teamID)
		}
		res, err = tx.exec(ctx, "UPDATE team_members SET role = ? WHERE team_id = ? AND user_id = ?",
			string(store.RoleOwner), teamID, to)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return errdefs.NotFound("user %s is not a member of team %s", to, teamID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("transfer team %s to %s: %w", teamID, to, err)
	}
	return nil
}

// ownerOrMissing explains a change to a member that changed nothing.
func (s *Store) ownerOrMissing(ctx context.Context, teamID, userID, what string) error {
	r, err := s.MemberRole(ctx, teamID, userID)
	if err != nil {
		return err
	}
	if r == store.RoleOwner {
		return errdefs.Conflict("the owner of team %s cannot be %s", teamID, what)
	}
	return errdefs.Conflict("member %s of team %s changed meanwhile; try again", userID, teamID)
}

// TeamPolicy returns teamID's settings.
func (s *Store) TeamPolicy(ctx context.Context, teamID string) (store.TeamPolicy, error) {
	var p store.TeamPolicy
	err := s.reader().row(ctx, "SELECT members_mint_keys FROM team_settings WHERE team_id = ?", teamID).Scan(&p.MembersMintKeys)
	if errors.Is(err, sql.ErrNoRows) {
		return store.TeamPolicy{}, nil
	}
	if err != nil {
		return store.TeamPolicy{}, fmt.Errorf("settings of team %s: %w", teamID, err)
	}
	return p, nil
}

// SetTeamPolicy replaces teamID's settings.
func (s *Store) SetTeamPolicy(ctx context.Context, teamID string, p store.TeamPolicy) error {
	err := s.inTx(ctx, func(tx conn) error {
		if err := s.lockRow(ctx, tx, "teams", teamID); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, "DELETE FROM team_settings WHERE team_id = ?", teamID); err != nil {
			return err
		}
		_, err := tx.exec(ctx, "INSERT INTO team_settings (team_id, members_mint_keys) VALUES (?, ?)", teamID, p.MembersMintKeys)
		return err
	})
	if err != nil {
		return fmt.Errorf("set settings of team %s: %w", teamID, err)
	}
	return nil
}

// SetSessionTeam moves a session to another team of its user: one
// conditional statement on the membership.
func (s *Store) SetSessionTeam(ctx context.Context, userID, sessionID, teamID string) error {
	ok, err := s.execOne(ctx, `UPDATE sessions SET team_id = ? WHERE id = ? AND user_id = ?
		AND EXISTS (SELECT 1 FROM team_members m JOIN teams t ON t.id = m.team_id
			WHERE m.team_id = ? AND m.user_id = ? AND t.deleted_at IS NULL)`,
		teamID, sessionID, userID, teamID, userID)
	if err != nil {
		return fmt.Errorf("switch session %s to team %s: %w", sessionID, teamID, err)
	}
	if !ok {
		return errdefs.NotFound("team %s not found", teamID)
	}
	return nil
}
