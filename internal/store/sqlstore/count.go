package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"nestbox.dev"
	"nestbox.dev/internal/store"
)

// CountCapsules counts capsules by host and status over the statuses
// asked for, from the (host_id, status) index.
func (s *Store) CountCapsules(ctx context.Context, statuses []nestbox.Status) ([]store.CapsuleCount, error) {
	if len(statuses) == 0 {
		return nil, nil
	}
	args := make([]any, len(statuses))
	for i, st := range statuses {
		args[i] = string(st)
	}
	rows, err := s.reader().query(ctx, "SELECT host_id, status, COUNT(*) FROM capsules WHERE status IN (?"+strings.Repeat(", ?", len(statuses)-1)+") GROUP BY host_id, status", args...)
	if err != nil {
		return nil, fmt.Errorf("count capsules: %w", err)
	}
	counts, err := collect(rows, func(row scanner) (store.CapsuleCount, error) {
		var c store.CapsuleCount
		err := row.Scan(&c.HostID, &c.Status, &c.Count)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("count capsules: %w", err)
	}
	return counts, nil
}
