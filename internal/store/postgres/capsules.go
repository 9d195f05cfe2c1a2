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

// capsuleColumns are the columns scanCapsule reads, in its order.
const capsuleColumns = `id, team_id, template, status, error, vcpus, memory_mb, disk_mb,
	metadata, internet, allow_out, deny_out, host_id, envd_version, env_vars, access_token,
	created_at, updated_at, started_at, expires_at, stopped_at, traffic_access_token,
	generation, paused_at, paused_memory, remaining_ms, auto_pause, auto_pause_memory, auto_resume`

// CreateCapsule inserts c and its first event (from "" to c.Status, at
// c.CreatedAt) in one transaction. A taken ID is ErrAlreadyExists, an
// unknown team ErrNotFound.
func (s *Store) CreateCapsule(ctx context.Context, c store.Capsule) error {
	return s.createCapsule(ctx, c, nil)
}

// createCapsule is CreateCapsule with check, if not nil, run first in the
// same transaction: an error from it inserts nothing.
func (s *Store) createCapsule(ctx context.Context, c store.Capsule, check func(tx pgx.Tx) error) error {
	if c.Status == "" {
		return errdefs.Invalid("create capsule %s: no status", c.ID)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, "INSERT INTO capsules ("+capsuleColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
				$23, $24, $25, $26, $27, $28, $29)`,
			c.ID, c.TeamID, c.Template, string(c.Status), c.Error, c.VCPUs, c.MemoryMB, c.DiskMB,
			formatMap(c.Metadata), c.Internet, formatList(c.AllowOut), formatList(c.DenyOut),
			c.HostID, c.EnvdVersion, formatMap(c.EnvVars), c.AccessToken,
			c.CreatedAt, c.UpdatedAt, c.StartedAt, c.ExpiresAt, c.StoppedAt, c.TrafficAccessToken,
			max(c.Generation, 1), c.PausedAt, c.PausedMemory, c.Remaining.Milliseconds(), c.AutoPause, c.AutoPauseMemory, c.AutoResume)
		if err != nil {
			return kindOf(err)
		}
		return insertEvent(ctx, tx, c.ID, "", c.Status, "", c.CreatedAt)
	})
	if err != nil {
		return fmt.Errorf("create capsule %s: %w", c.ID, err)
	}
	return nil
}

// GetCapsule returns the capsule with id.
func (s *Store) GetCapsule(ctx context.Context, id string) (store.Capsule, error) {
	c, err := getCapsule(ctx, s.pool, id, "")
	if err != nil {
		return store.Capsule{}, fmt.Errorf("get capsule %s: %w", id, err)
	}
	return c, nil
}

// SetCapsuleExpiry sets the capsule's ExpiresAt to t. It is not a status
// change, so UpdatedAt stays.
func (s *Store) SetCapsuleExpiry(ctx context.Context, id string, t time.Time) error {
	ok, err := s.execOne(ctx, "UPDATE capsules SET expires_at = $1 WHERE id = $2", t, id)
	if err != nil {
		return fmt.Errorf("set expiry of capsule %s: %w", id, err)
	}
	if !ok {
		return errdefs.NotFound("capsule %s not found", id)
	}
	return nil
}

// getCapsule reads one capsule through q, with lock appended to the
// SELECT (say "FOR UPDATE", or ""); a missing one is ErrNotFound.
func getCapsule(ctx context.Context, q querier, id, lock string) (store.Capsule, error) {
	c, err := scanCapsule(q.QueryRow(ctx, "SELECT "+capsuleColumns+" FROM capsules WHERE id = $1 "+lock, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Capsule{}, errdefs.NotFound("capsule %s not found", id)
	}
	return c, err
}

// scanCapsule reads one row of capsuleColumns.
func scanCapsule(row pgx.Row) (store.Capsule, error) {
	var (
		c           store.Capsule
		remainingMS int64
	)
	err := row.Scan(&c.ID, &c.TeamID, &c.Template, &c.Status, &c.Error, &c.VCPUs, &c.MemoryMB, &c.DiskMB,
		&c.Metadata, &c.Internet, &c.AllowOut, &c.DenyOut,
		&c.HostID, &c.EnvdVersion, &c.EnvVars, &c.AccessToken,
		&c.CreatedAt, &c.UpdatedAt, &c.StartedAt, &c.ExpiresAt, &c.StoppedAt, &c.TrafficAccessToken,
		&c.Generation, &c.PausedAt, &c.PausedMemory, &remainingMS, &c.AutoPause, &c.AutoPauseMemory, &c.AutoResume)
	c.Remaining = time.Duration(remainingMS) * time.Millisecond
	emptyToNil(&c.Metadata, &c.AllowOut, &c.DenyOut)
	emptyToNil(&c.EnvVars)
	return c, err
}
