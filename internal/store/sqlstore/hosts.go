package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

const hostColumns = "id, address, last_seen, created_at"

// UpsertHost inserts h, or updates the address and last heartbeat of the
// host with h's ID. Created is kept from the first registration.
func (s *Store) UpsertHost(ctx context.Context, h store.Host) error {
	_, err := s.writer().exec(ctx, `
		INSERT INTO hosts (`+hostColumns+`) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET address = excluded.address, last_seen = excluded.last_seen`,
		h.ID, h.Address, s.d.time(h.LastSeen), s.d.time(h.Created))
	if err != nil {
		return fmt.Errorf("upsert host %s: %w", h.ID, err)
	}
	return nil
}

// GetHost returns the host with id.
func (s *Store) GetHost(ctx context.Context, id string) (store.Host, error) {
	h, err := s.scanHost(s.reader().row(ctx, "SELECT "+hostColumns+" FROM hosts WHERE id = ?", id))
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
	rows, err := s.reader().query(ctx, "SELECT "+hostColumns+" FROM hosts ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	hs, err := collect(rows, s.scanHost)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	return hs, nil
}

func (s *Store) scanHost(row scanner) (store.Host, error) {
	var h store.Host
	err := row.Scan(&h.ID, &h.Address, s.d.timeCol(&h.LastSeen), s.d.timeCol(&h.Created))
	return h, err
}
