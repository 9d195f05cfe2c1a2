package sqlstore

import (
	"context"
	"fmt"
	"time"

	"nestbox.dev"
)

// TouchCapsules is one UPDATE per call, whatever the number of IDs.
func (s *Store) TouchCapsules(ctx context.Context, ids []string, statuses []nestbox.Status, at time.Time) error {
	if len(ids) == 0 || len(statuses) == 0 {
		return nil
	}
	args := []any{s.d.time(at)}
	for _, id := range ids {
		args = append(args, id)
	}
	for _, st := range statuses {
		args = append(args, string(st))
	}
	_, err := s.writer().exec(ctx, `UPDATE capsules SET updated_at = ? WHERE id IN (`+placeholders(len(ids))+`) AND status IN (`+placeholders(len(statuses))+`)`, args...)
	if err != nil {
		return fmt.Errorf("touch %d capsules: %w", len(ids), err)
	}
	return nil
}
