package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

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
	where, args, err := capsuleFilter(f)
	if err != nil {
		return nil, "", fmt.Errorf("list capsules: %w", err)
	}
	query := "SELECT " + capsuleColumns + " FROM capsules"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	// One row more than the page tells whether there is a next page
	// without a second query.
	args = append(args, limit+1)
	if f.Oldest {
		query += " ORDER BY created_at ASC, id ASC LIMIT $" + strconv.Itoa(len(args))
	} else {
		query += " ORDER BY created_at DESC, id DESC LIMIT $" + strconv.Itoa(len(args))
	}

	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list capsules: %w", err)
	}
	cs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Capsule, error) { return scanCapsule(row) })
	if err != nil {
		return nil, "", fmt.Errorf("list capsules: %w", err)
	}
	if len(cs) <= limit {
		return cs, "", nil
	}
	cs = cs[:limit]
	last := cs[limit-1]
	return cs, encodeCursor(last.CreatedAt, last.ID), nil
}

// capsuleFilter is the WHERE clause of f, as conditions to AND and their
// arguments ($1 onwards).
func capsuleFilter(f store.CapsuleFilter) (where []string, args []any, err error) {
	// arg adds v and returns its placeholder.
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.TeamID != "" {
		where = append(where, "team_id = "+arg(f.TeamID))
	}
	if len(f.Statuses) > 0 {
		where = append(where, "status = ANY("+arg(statusStrings(f.Statuses))+")")
	}
	if f.HostID != "" {
		where = append(where, "host_id = "+arg(f.HostID))
	}
	if f.Template != "" {
		where = append(where, "template = "+arg(f.Template))
	}
	if !f.StartedAfter.IsZero() {
		where = append(where, "COALESCE(started_at, created_at) >= "+arg(f.StartedAfter)+"::timestamptz")
	}
	// Containment of a JSON object of strings: every pair must be in the
	// metadata with an equal value. Keys and values are data, never part
	// of a JSON path that would need escaping.
	if len(f.Metadata) > 0 {
		where = append(where, "metadata @> "+arg(formatMap(f.Metadata))+"::jsonb")
	}
	if f.Cursor != "" {
		createdAt, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, nil, err
		}
		op := "<"
		if f.Oldest {
			op = ">"
		}
		where = append(where, "(created_at, id) "+op+" ("+arg(createdAt)+"::timestamptz, "+arg(id)+"::text)")
	}
	return where, args, nil
}
