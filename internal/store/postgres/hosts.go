package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

const hostColumns = "id, address, last_seen, created_at"

// UpsertHost inserts h, or updates the address and last heartbeat of the
// host with h's ID. Created is kept from the first registration.
func (s *Store) UpsertHost(ctx context.Context, h store.Host) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO hosts (`+hostColumns+`) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET address = excluded.address, last_seen = excluded.last_seen`,
		h.ID, h.Address, h.LastSeen, h.Created)
	if err != nil {
		return fmt.Errorf("upsert host %s: %w", h.ID, kindOf(err))
	}
	return nil
}

// GetHost returns the host with id.
func (s *Store) GetHost(ctx context.Context, id string) (store.Host, error) {
	h, err := scanHost(s.pool.QueryRow(ctx, "SELECT "+hostColumns+" FROM hosts WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Host{}, errdefs.NotFound("host %s not found", id)
	}
	if err != nil {
		return store.Host{}, fmt.Errorf("get host %s: %w", id, err)
	}
	return h, nil
}

// ListHosts lists every host, oldest registration first.
func (s *Store) ListHosts(ctx context.Context) ([]store.Host, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+hostColumns+" FROM hosts ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	hs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Host, error) { return scanHost(row) })
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	return hs, nil
}

func scanHost(row pgx.Row) (store.Host, error) {
	var h store.Host
	err := row.Scan(&h.ID, &h.Address, &h.LastSeen, &h.Created)
	return h, err
}
