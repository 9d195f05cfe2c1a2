package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

const invitationColumns = "id, team_id, email, role, invited_by, created_at, expires_at, accepted_at, accepted_by"

// CreateInvitation inserts inv under the team's limit of pending ones.
func (s *Store) CreateInvitation(ctx context.Context, inv store.Invitation, maxPending int, now time.Time) error {
	if maxPending <= 0 {
		return errdefs.Invalid("create invitation %s: max %d: want at least 1", inv.ID, maxPending)
	}
	if inv.Role != store.RoleAdmin && inv.Role != store.RoleMember {
		return errdefs.Invalid("role %q: want admin or member", inv.Role)
	}
	err := s.inTx(ctx, func(tx conn) error {
		if err := s.lockRow(ctx, tx, "teams", inv.TeamID); err != nil {
			return err
		}
		var n int
		if err := tx.row(ctx, "SELECT COUNT(*) FROM invitations WHERE team_id = ? AND accepted_at IS NULL AND expires_at > ?",
			inv.TeamID, s.d.time(now)).Scan(&n); err != nil {
			return err
		}
		if n >= maxPending {
			return fmt.Errorf("team %s has %d pending invitations, its limit: %w", inv.TeamID, n, errdefs.ErrExhausted)
		}
		_, err := tx.exec(ctx, "INSERT INTO invitations ("+invitationColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			inv.ID, inv.TeamID, inv.Email, string(inv.Role), nullString(inv.InvitedBy),
			s.d.time(inv.CreatedAt), s.d.time(inv.ExpiresAt), s.d.timePtr(inv.AcceptedAt), nullString(inv.AcceptedBy))
		return err
	})
	if err != nil {
		return fmt.Errorf("create invitation %s: %w", inv.ID, err)
	}
	return nil
}

// GetInvitation returns invitation id.
func (s *Store) GetInvitation(ctx context.Context, id string) (store.Invitation, error) {
	inv, err := s.scanInvitation(s.reader().row(ctx, "SELECT "+invitationColumns+" FROM invitations WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Invitation{}, errdefs.NotFound("invitation %s not found", id)
	}
	if err != nil {
		return store.Invitation{}, fmt.Errorf("get invitation %s: %w", id, err)
	}
	return inv, nil
}

// ListInvitations lists teamID's pending invitations, oldest first.
func (s *Store) ListInvitations(ctx context.Context, teamID string, now time.Time) ([]store.Invitation, error) {
	rows, err := s.reader().query(ctx, "SELECT "+invitationColumns+
		" FROM invitations WHERE team_id = ? AND accepted_at IS NULL AND expires_at > ? ORDER BY created_at, id",
		teamID, s.d.time(now))
	if err != nil {
		return nil, fmt.Errorf("invitations of team %s: %w", teamID, err)
	}
	invs, err := collect(rows, s.scanInvitation)
	if err != nil {
		return nil, fmt.Errorf("invitations of team %s: %w", teamID, err)
	}
	return invs, nil
}

// DeleteInvitation withdraws invitation id of teamID.
func (s *Store) DeleteInvitation(ctx context.Context, teamID, id string) error {
	ok, err := s.execOne(ctx, "DELETE FROM invitations WHERE id = ? AND team_id = ?", id, teamID)
	if err != nil {
		return fmt.Errorf("delete invitation %s: %w", id, err)
	}
	if !ok {
		return errdefs.NotFound("invitation %s not found", id)
	}
	return nil
}

// AcceptInvitation accepts a pending invitation and adds the member.
func (s *Store) AcceptInvitation(ctx context.Context, id, userID string, now time.Time, maxMembers int) (store.Invitation, error) {
	var inv store.Invitation
	err := s.inTx(ctx, func(tx conn) error {
		var err error
		inv, err = s.scanInvitation(tx.row(ctx, "SELECT "+invitationColumns+" FROM invitations WHERE id = ?", id))
		if errors.Is(err, sql.ErrNoRows) {
			return errdefs.NotFound("invitation %s not found", id)
		}
		if err != nil {
			return err
		}
		if err := s.lockRow(ctx, tx, "teams", inv.TeamID); err != nil {
			return err
		}
		res, err := tx.exec(ctx, "UPDATE invitations SET accepted_at = ?, accepted_by = ? WHERE id = ? AND accepted_at IS NULL AND expires_at > ?",
			s.d.time(now), userID, id, s.d.time(now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return errdefs.Conflict("invitation %s is accepted or expired", id)
		}
		var members int
		if err := tx.row(ctx, "SELECT COUNT(*) FROM team_members WHERE team_id = ?", inv.TeamID).Scan(&members); err != nil {
			return err
		}
		if maxMembers > 0 && members >= maxMembers {
			return fmt.Errorf("team %s has %d members, its limit: %w", inv.TeamID, members, errdefs.ErrExhausted)
		}
		_, err = tx.exec(ctx, "INSERT INTO team_members (team_id, user_id, role) VALUES (?, ?, ?)", inv.TeamID, userID, string(inv.Role))
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			return errdefs.AlreadyExists("user %s is already a member of team %s", userID, inv.TeamID)
		}
		return err
	})
	if err != nil {
		return store.Invitation{}, fmt.Errorf("accept invitation %s: %w", id, err)
	}
	inv.AcceptedAt, inv.AcceptedBy = &now, userID
	return inv, nil
}

func (s *Store) scanInvitation(row scanner) (store.Invitation, error) {
	var inv store.Invitation
	var by, acceptedBy sql.NullString
	err := row.Scan(&inv.ID, &inv.TeamID, &inv.Email, &inv.Role, &by,
		s.d.timeCol(&inv.CreatedAt), s.d.timeCol(&inv.ExpiresAt), s.d.nullTimeCol(&inv.AcceptedAt), &acceptedBy)
	inv.InvitedBy, inv.AcceptedBy = by.String, acceptedBy.String
	return inv, err
}
