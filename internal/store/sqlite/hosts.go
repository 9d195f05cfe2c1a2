package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// UpsertHost inserts h, or updates the address and last heartbeat of the
// host with h's ID. Created is kept from the first registration.
func (s *Store) UpsertHost(ctx context.Context, h store.Host) error {
	_, err := s.write.ExecContext(ctx, `
		INSERT INTO hosts (id, address, last_seen, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET address = excluded.address, last_seen = excluded.last_seen`,
		h.ID, h.Address, formatTime(h.LastSeen), formatTime(h.Created))
	if err != nil {
		return fmt.Errorf("upsert host %s: %w", h.ID, kindOf(err))
	}
	return nil
}

// GetHost returns the host with id.
func (s *Store) GetHost(ctx context.Context, id string) (store.Host, error) {
	h, err := scanHost(s.read.QueryRowContext(ctx, "SELECT id, address, last_seen, created_at FROM hosts WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Host{}, errdefs.NotFound("host %s not found", id)
	}
	if err != nil {
		return store.Host{}, fmt.Errorf("get host %s: %w", id, err)
	}
	return h, nil
}

// ListHosts lists every host, oldest registration first.
func (s *Store) ListHosts(ctx context.Context) ([]store.Host, error) {
	rows, err := s.read.QueryContext(ctx, "SELECT id, address, last_seen, created_at FROM hosts ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	defer rows.Close()
	var hs []store.Host
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return nil, fmt.Errorf("list hosts: %w", err)
		}
		hs = append(hs, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	return hs, nil
}

func scanHost(row scanner) (store.Host, error) {
	var h store.Host
	err := row.Scan(&h.ID, &h.Address, timeCol{&h.LastSeen}, timeCol{&h.Created})
	return h, err
}
