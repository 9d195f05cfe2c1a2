package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"nestbox.dev/internal/store"
)

// ListTeams lists teams after after, by ID, with owner and member count.
func (s *Store) ListTeams(ctx context.Context, after string, limit int) ([]store.TeamSummary, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := s.reader().query(ctx, `
		SELECT t.id, t.name, t.created_at, t.byoc, t.deleted_at,
			(SELECT m.user_id FROM team_members m WHERE m.team_id = t.id AND m.role = 'owner'),
			(SELECT COUNT(*) FROM team_members m WHERE m.team_id = t.id)
		FROM teams t WHERE t.id > ? ORDER BY t.id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list teams: %w", err)
	}
	ts, err := collect(rows, func(row scanner) (store.TeamSummary, error) {
		var x store.TeamSummary
		var ownerID sql.NullString
		err := row.Scan(&x.Team.ID, &x.Team.Name, s.d.timeCol(&x.Team.CreatedAt), &x.Team.BYOC, s.d.nullTimeCol(&x.Team.DeletedAt), &ownerID, &x.Members)
		x.OwnerID = ownerID.String
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("list teams: %w", err)
	}
	return ts, nil
}
