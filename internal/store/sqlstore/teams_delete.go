package sqlstore

import (
	"context"
	"fmt"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// The platform admins' team actions: the BYOC flag and soft deletion.

// SetTeamBYOC sets a live team's BYOC flag; one conditional statement, so
// asking for what already is changes nothing.
func (s *Store) SetTeamBYOC(ctx context.Context, teamID string, byoc bool) (bool, error) {
	changed, err := s.execOne(ctx, "UPDATE teams SET byoc = ? WHERE id = ? AND deleted_at IS NULL AND byoc <> ?", byoc, teamID, byoc)
	if err != nil {
		return false, fmt.Errorf("set BYOC of team %s: %w", teamID, err)
	}
	if changed {
		return true, nil
	}
	if err := s.liveTeam(ctx, teamID); err != nil {
		return false, fmt.Errorf("set BYOC of team %s: %w", teamID, err)
	}
	return false, nil
}

// liveTeam is nil if teamID names a team that is not deleted, else
// ErrNotFound.
func (s *Store) liveTeam(ctx context.Context, teamID string) error {
	t, err := s.GetTeam(ctx, teamID)
	if err != nil {
		return err
	}
	if t.DeletedAt != nil {
		return errdefs.NotFound("team %s not found (deleted)", teamID)
	}
	return nil
}

// DeleteTeam marks the team deleted and removes every credential that
// acts in it, in one transaction: the mark is a compare-and-set on
// deleted_at, so of concurrent deletes one changes the team and the
// others find it deleted.
func (s *Store) DeleteTeam(ctx context.Context, teamID string, at time.Time) (store.TeamDeletion, error) {
	var d store.TeamDeletion
	err := s.inTx(ctx, func(tx conn) error {
		if err := s.lockRow(ctx, tx, "teams", teamID); err != nil {
			return err
		}
		res, err := tx.exec(ctx, "UPDATE teams SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL", s.d.time(at), teamID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // deleted already: nothing more to do
		}
		d.Changed = true
		for _, del := range []struct {
			query string
			n     *int
		}{
			{"DELETE FROM api_keys WHERE team_id = ?", &d.KeysRevoked},
			{"DELETE FROM sessions WHERE team_id = ?", &d.SessionsEnded},
			{"DELETE FROM invitations WHERE team_id = ? AND accepted_at IS NULL", nil},
		} {
			res, err := tx.exec(ctx, del.query, teamID)
			if err != nil {
				return err
			}
			if del.n != nil {
				n, err := res.RowsAffected()
				if err != nil {
					return err
				}
				*del.n = int(n)
			}
		}
		return nil
	})
	if err != nil {
		return store.TeamDeletion{}, fmt.Errorf("delete team %s: %w", teamID, err)
	}
	return d, nil
}
