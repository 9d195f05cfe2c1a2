package sqlstore

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	"nestbox.dev/internal/errdefs"
)

// A cursor is the (created_at, id) of the last capsule of a page, base64url
// encoded so that clients treat it as opaque. The next page starts strictly
// after that key, not at an offset: capsules created between two pages
// are newer than the cursor and never shift or repeat what follows it.
// created_at is written in the dialect's TimeLayout, so cursors that a
// store handed out stay valid across this code's versions: SQLite's carry
// nanoseconds, PostgreSQL's microseconds.

// encodeCursor is the cursor after a capsule created at createdAt with id.
func (d *Dialect) encodeCursor(createdAt time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(createdAt.UTC().Format(d.TimeLayout) + " " + id))
}

// decodeCursor returns the created_at and the ID of a cursor. Anything
// that encodeCursor did not make is ErrInvalid: the cursor comes from a
// client.
func (d *Dialect) decodeCursor(cursor string) (createdAt time.Time, id string, err error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
	if err != nil {
		return time.Time{}, "", errdefs.Invalid("bad cursor %q", cursor)
	}
	at, id, ok := strings.Cut(string(b), " ")
	if !ok || id == "" {
		return time.Time{}, "", errdefs.Invalid("bad cursor %q", cursor)
	}
	// Only the canonical form: one cursor per key, and for text
	// timestamps the only form that compares correctly.
	t, err := time.Parse(d.TimeLayout, at)
	if err != nil || t.UTC().Format(d.TimeLayout) != at {
		return time.Time{}, "", errdefs.Invalid("bad cursor %q", cursor)
	}
	return t, id, nil
}

// pageLimit is a list's page size: limit, defaultLimit for 0, at most
// maxLimit; a negative one is ErrInvalid.
func pageLimit(what string, limit int) (int, error) {
	switch {
	case limit < 0:
		return 0, errdefs.Invalid("%s: negative limit %d", what, limit)
	case limit == 0:
		return defaultLimit, nil
	}
	return min(limit, maxLimit), nil
}

// page is one keyset page of rows of a table whose key is (created_at,
// id): the query, its order and the cursor of the next page, for every
// list of the store.
type page[T any] struct {
	what    string // "list capsules", for errors
	columns string
	table   string
	where   []string
	args    []any
	cursor  string // the client's; "" for the first page
	limit   int    // from pageLimit
	oldest  bool   // oldest first; newest first otherwise
	scan    func(scanner) (T, error)
	key     func(T) (createdAt time.Time, id string)
}

// list reads the page: its rows, and the cursor after the last of them
// or "" if no row follows. One row more than the page is read to know.
func (p page[T]) list(ctx context.Context, s *Store) ([]T, string, error) {
	where, args := p.where, p.args
	if p.cursor != "" {
		createdAt, id, err := s.d.decodeCursor(p.cursor)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", p.what, err)
		}
		cmp := "<"
		if p.oldest {
			cmp = ">"
		}
		where = append(slices.Clip(where), "(created_at, id) "+cmp+" (?, ?)")
		args = append(slices.Clip(args), s.d.time(createdAt), id)
	}
	query := "SELECT " + p.columns + " FROM " + p.table
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	if p.oldest {
		query += " ORDER BY created_at ASC, id ASC LIMIT ?"
	} else {
		query += " ORDER BY created_at DESC, id DESC LIMIT ?"
	}
	rows, err := s.reader().query(ctx, query, append(slices.Clip(args), p.limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", p.what, err)
	}
	out, err := collect(rows, p.scan)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", p.what, err)
	}
	if len(out) <= p.limit {
		return out, "", nil
	}
	out = out[:p.limit]
	at, id := p.key(out[p.limit-1])
	return out, s.d.encodeCursor(at, id), nil
}
