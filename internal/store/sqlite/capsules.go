package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

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
func (s *Store) createCapsule(ctx context.Context, c store.Capsule, check func(tx *sql.Tx) error) error {
	if c.Status == "" {
		return errdefs.Invalid("create capsule %s: no status", c.ID)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO capsules ("+capsuleColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.TeamID, c.Template, string(c.Status), c.Error, c.VCPUs, c.MemoryMB, c.DiskMB,
			formatMap(c.Metadata), boolInt(c.Internet), formatList(c.AllowOut), formatList(c.DenyOut),
			c.HostID, c.EnvdVersion, formatMap(c.EnvVars), c.AccessToken,
			formatTime(c.CreatedAt), formatTime(c.UpdatedAt),
			formatTimePtr(c.StartedAt), formatTimePtr(c.ExpiresAt), formatTimePtr(c.StoppedAt), c.TrafficAccessToken,
			max(c.Generation, 1), formatTimePtr(c.PausedAt), boolInt(c.PausedMemory), c.Remaining.Milliseconds(),
			boolInt(c.AutoPause), boolInt(c.AutoPauseMemory), boolInt(c.AutoResume))
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
	c, err := getCapsule(ctx, s.read, id)
	if err != nil {
		return store.Capsule{}, fmt.Errorf("get capsule %s: %w", id, err)
	}
	return c, nil
}

// SetCapsuleExpiry sets the capsule's ExpiresAt to t. It is not a status
// change, so UpdatedAt stays.
func (s *Store) SetCapsuleExpiry(ctx context.Context, id string, t time.Time) error {
	ok, err := s.execOne(ctx, "UPDATE capsules SET expires_at = ? WHERE id = ?", formatTime(t), id)
	if err != nil {
		return fmt.Errorf("set expiry of capsule %s: %w", id, err)
	}
	if !ok {
		return errdefs.NotFound("capsule %s not found", id)
	}
	return nil
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// getCapsule reads one capsule through q; a missing one is ErrNotFound.
func getCapsule(ctx context.Context, q querier, id string) (store.Capsule, error) {
	c, err := scanCapsule(q.QueryRowContext(ctx, "SELECT "+capsuleColumns+" FROM capsules WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Capsule{}, errdefs.NotFound("capsule %s not found", id)
	}
	return c, err
}

// scanCapsule reads one row of capsuleColumns.
func scanCapsule(row scanner) (store.Capsule, error) {
	var (
		c           store.Capsule
		remainingMS int64
	)
	err := row.Scan(&c.ID, &c.TeamID, &c.Template, &c.Status, &c.Error, &c.VCPUs, &c.MemoryMB, &c.DiskMB,
		mapCol{&c.Metadata}, &c.Internet, listCol{&c.AllowOut}, listCol{&c.DenyOut},
		&c.HostID, &c.EnvdVersion, mapCol{&c.EnvVars}, &c.AccessToken,
		timeCol{&c.CreatedAt}, timeCol{&c.UpdatedAt},
		nullTimeCol{&c.StartedAt}, nullTimeCol{&c.ExpiresAt}, nullTimeCol{&c.StoppedAt}, &c.TrafficAccessToken,
		&c.Generation, nullTimeCol{&c.PausedAt}, &c.PausedMemory, &remainingMS, &c.AutoPause, &c.AutoPauseMemory, &c.AutoResume)
	c.Remaining = time.Duration(remainingMS) * time.Millisecond
	return c, err
}
