package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

const keyColumns = "id, team_id, name, prefix, hash, created_by, created_at, last_used_at"

// CreateAPIKey inserts k. A taken ID or hash is ErrAlreadyExists; an
// unknown team or creator is ErrNotFound.
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	_, err := s.writer().exec(ctx, "INSERT INTO api_keys ("+keyColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		k.ID, k.TeamID, k.Name, k.Prefix, k.Hash, nullString(k.CreatedBy),
		s.d.time(k.CreatedAt), s.d.timePtr(k.LastUsedAt))
	if err != nil {
		return fmt.Errorf("create API key %s: %w", k.ID, err)
	}
	return nil
}

// APIKeyByHash finds the key whose secret hashes to hash. A revoked key is
// deleted, so it is not found like a key that never was.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (store.APIKey, error) {
	k, err := s.scanKey(s.reader().row(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE hash = ?", hash))
	if errors.Is(err, sql.ErrNoRows) {
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
	rows, err := s.reader().query(ctx,
		"SELECT "+keyColumns+" FROM api_keys WHERE team_id = ? ORDER BY created_at, id", teamID)
	if err != nil {
		return nil, fmt.Errorf("list API keys of team %s: %w", teamID, err)
	}
	ks, err := collect(rows, s.scanKey)
	if err != nil {
		return nil, fmt.Errorf("list API keys of team %s: %w", teamID, err)
	}
	return ks, nil
}

// DeleteAPIKey deletes key id of teamID. The key of another team is not
// found, so that one team cannot probe for another's key IDs.
func (s *Store) DeleteAPIKey(ctx context.Context, teamID, id string) error {
	ok, err := s.execOne(ctx, "DELETE FROM api_keys WHERE id = ? AND team_id = ?", id, teamID)
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
	ok, err := s.execOne(ctx, "UPDATE api_keys SET last_used_at = ? WHERE id = ?", s.d.time(t), id)
	if err != nil {
		return fmt.Errorf("touch API key %s: %w", id, err)
	}
	if !ok {
		return errdefs.NotFound("API key %s not found", id)
	}
	return nil
}

// scanKey reads one row of keyColumns.
func (s *Store) scanKey(row scanner) (store.APIKey, error) {
	var k store.APIKey
	var createdBy sql.NullString
	err := row.Scan(&k.ID, &k.TeamID, &k.Name, &k.Prefix, &k.Hash, &createdBy,
		s.d.timeCol(&k.CreatedAt), s.d.nullTimeCol(&k.LastUsedAt))
	k.CreatedBy = createdBy.String
	return k, err
}
