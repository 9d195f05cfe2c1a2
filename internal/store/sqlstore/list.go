package sqlstore

import (
	"context"
	"fmt"
	"strings"

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
	limit := f.Limit
	switch {
	case limit < 0:
		return nil, "", errdefs.Invalid("list capsules: negative limit %d", limit)
	case limit == 0:
		limit = defaultLimit
	case limit > maxLimit:
		limit = maxLimit
	}
	where, args, err := s.capsuleFilter(f)
	if err != nil {
		return nil, "", fmt.Errorf("list capsules: %w", err)
	}
	query := "SELECT " + capsuleColumns + " FROM capsules"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	// One row more than the page tells whether there is a next page
	// without a second query.
	if f.Oldest {
		query += " ORDER BY created_at ASC, id ASC LIMIT ?"
	} else {
		query += " ORDER BY created_at DESC, id DESC LIMIT ?"
	}
	args = append(args, limit+1)

	rows, err := s.reader().query(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list capsules: %w", err)
	}
	cs, err := collect(rows, func(row scanner) (store.Capsule, error) { return scanCapsule(&s.d, row) })
	if err != nil {
		return nil, "", fmt.Errorf("list capsules: %w", err)
	}
	if len(cs) <= limit {
		return cs, "", nil
	}
	cs = cs[:limit]
	last := cs[limit-1]
	return cs, s.d.encodeCursor(last.CreatedAt, last.ID), nil
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
	if f.Cursor != "" {
		createdAt, id, err := s.d.decodeCursor(f.Cursor)
		if err != nil {
			return nil, nil, err
		}
		if f.Oldest {
			where = append(where, "(created_at, id) > (?, ?)")
		} else {
			where = append(where, "(created_at, id) < (?, ?)")
		}
		args = append(args, s.d.time(createdAt), id)
	}
	return where, args, nil
}
