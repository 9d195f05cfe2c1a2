package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

const keyColumns = "id, team_id, name, prefix, hash, created_by, created_at, last_used_at"

// CreateAPIKey inserts k. A taken ID or hash is ErrAlreadyExists; an
// unknown team or creator is ErrNotFound.
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO api_keys ("+keyColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
		k.ID, k.TeamID, k.Name, k.Prefix, k.Hash, nullString(k.CreatedBy), k.CreatedAt, k.LastUsedAt)
	if err != nil {
		return fmt.Errorf("create API key %s: %w", k.ID, kindOf(err))
	}
	return nil
}

// APIKeyByHash finds the key whose secret hashes to hash. A revoked key is
// deleted, so it is not found like a key that never was.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (store.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE hash = $1", hash))
	if errors.Is(err, pgx.ErrNoRows) {
		// The hash is as good as a secret: it stays out of the message.
		return store.APIKey{}, errdefs.NotFound("API key not found")
	}
	if err != nil {
		return store.APIKey{}, fmt.Errorf("find API key: %w", err)
	}
	return k, nil
}

// ListAPIKeys lists the keys of teamID, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, teamID string) ([]store.APIKey, error) {
	rows, err := s.pool.Query(ctx,
		"SELECT "+keyColumns+" FROM api_keys WHERE team_id = $1 ORDER BY created_at, id", teamID)
	if err != nil {
		return nil, fmt.Errorf("list API keys of team %s: %w", teamID, err)
	}
	ks, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.APIKey, error) { return scanKey(row) })
	if err != nil {
		return nil, fmt.Errorf("list API keys of team %s: %w", teamID, err)
	}
	return ks, nil
}

// DeleteAPIKey deletes key id of teamID. The key of another team is not
// found, so that one team cannot probe for another's key IDs.
func (s *Store) DeleteAPIKey(ctx context.Context, teamID, id string) error {
	ok, err := s.execOne(ctx, "DELETE FROM api_keys WHERE id = $1 AND team_id = $2", id, teamID)
	if err != nil {
		return fmt.Errorf("delete API key %s: %w", id, err)
	}
	if !ok {
		return errdefs.NotFound("API key %s not found", id)
	}
	return nil
}

// TouchAPIKey sets the key's last use to t.
func (s *Store) TouchAPIKey(ctx context.Context, id string, t time.Time) error {
	ok, err := s.execOne(ctx, "UPDATE api_keys SET last_used_at = $1 WHERE id = $2", t, id)
	if err != nil {
		return fmt.Errorf("touch API key %s: %w", id, err)
	}
	if !ok {
		return errdefs.NotFound("API key %s not found", id)
	}
	return nil
}

// scanKey reads one row of keyColumns.
func scanKey(row pgx.Row) (store.APIKey, error) {
	var k store.APIKey
	var createdBy *string
	err := row.Scan(&k.ID, &k.TeamID, &k.Name, &k.Prefix, &k.Hash, &createdBy, &k.CreatedAt, &k.LastUsedAt)
	if createdBy != nil {
		k.CreatedBy = *createdBy
	}
	return k, err
}
