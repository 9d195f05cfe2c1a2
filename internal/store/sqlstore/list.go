package sqlstore

import (
	"context"
	"fmt"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// Page sizes of ListCapsules.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// ListCapsules returns the capsules that match f, newest first (by
// created_at, then by ID, both descending; ascending with f.Oldest), at
// most f.Limit of them, and the cursor of the next page, or "" if this
// page is the last. A cursor that ListCapsules did not make, or a negative
// limit, is ErrInvalid.
func (s *Store) ListCapsules(ctx context.Context, f store.CapsuleFilter) ([]store.Capsule, string, error) {
	limit, err := pageLimit("list capsules", f.Limit)
	if err != nil {
		return nil, "", err
	}
	where, args, err := s.capsuleFilter(f)
	if err != nil {
		return nil, "", fmt.Errorf("list capsules: %w", err)
	}
	return page[store.Capsule]{
		what: "list capsules", columns: capsuleColumns, table: "capsules", where: where, args: args,
		cursor: f.Cursor, limit: limit, oldest: f.Oldest,
		scan: func(row scanner) (store.Capsule, error) { return scanCapsule(&s.d, row) },
		key:  func(c store.Capsule) (time.Time, string) { return c.CreatedAt, c.ID },
	}.list(ctx, s)
}

// capsuleFilter is the WHERE clause of f, as conditions to AND and their
// arguments.
func (s *Store) capsuleFilter(f store.CapsuleFilter) (where []string, args []any, err error) {
	if f.TeamID != "" {
		where = append(where, "team_id = ?")
		args = append(args, f.TeamID)
	}
	if len(f.Statuses) > 0 {
		where = append(where, "status IN ("+placeholders(len(f.Statuses))+")")
		for _, st := range f.Statuses {
			args = append(args, string(st))
		}
	}
	if f.HostID != "" {
		where = append(where, "host_id = ?")
		args = append(args, f.HostID)
	}
	if f.Template != "" {
		where = append(where, "template = ?")
		args = append(args, f.Template)
	}
	if !f.StartedAfter.IsZero() {
		where = append(where, "COALESCE(started_at, created_at) >= ?")
		args = append(args, s.d.time(f.StartedAfter))
	}
	if len(f.Metadata) > 0 {
		if s.d.MetadataMatch == nil {
			return nil, nil, errdefs.Invalid("this store cannot filter by metadata")
		}
		cond, margs := s.d.MetadataMatch(f.Metadata)
		where = append(where, cond)
		args = append(args, margs...)
	}
	return where, args, nil
}
