package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// capsuleColumns are the columns scanCapsule reads, in its order.
const capsuleColumns = `id, team_id, template, status, error, vcpus, memory_mb, disk_mb,
	metadata, internet, allow_out, deny_out, host_id, envd_version, env_vars, access_token,
	created_at, updated_at, started_at, expires_at, stopped_at, traffic_access_token,
	generation, paused_at, paused_memory, remaining_ms, auto_pause, auto_pause_memory, auto_resume, snapshot_id`

// capsuleColumnCount is the number of capsuleColumns.
const capsuleColumnCount = 30

// CreateCapsule inserts c and its first event (from "" to c.Status, at
// c.CreatedAt) in one transaction. A taken ID is ErrAlreadyExists, an
// unknown team ErrNotFound.
func (s *Store) CreateCapsule(ctx context.Context, c store.Capsule) error {
	return s.createCapsule(ctx, c, nil)
}

// createCapsule is CreateCapsule with check, if not nil, run first in the
// same transaction: an error from it inserts nothing.
func (s *Store) createCapsule(ctx context.Context, c store.Capsule, check func(tx conn) error) error {
	if c.Status == "" {
		return errdefs.Invalid("create capsule %s: no status", c.ID)
	}
	d := &s.d
	err := s.inTx(ctx, func(tx conn) error {
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		_, err := tx.exec(ctx, "INSERT INTO capsules ("+capsuleColumns+") VALUES ("+placeholders(capsuleColumnCount)+")",
			c.ID, c.TeamID, c.Template, string(c.Status), c.Error, c.VCPUs, c.MemoryMB, c.DiskMB,
			formatMap(c.Metadata), c.Internet, formatList(c.AllowOut), formatList(c.DenyOut),
			c.HostID, c.EnvdVersion, formatMap(c.EnvVars), c.AccessToken,
			d.time(c.CreatedAt), d.time(c.UpdatedAt),
			d.timePtr(c.StartedAt), d.timePtr(c.ExpiresAt), d.timePtr(c.StoppedAt), c.TrafficAccessToken,
			max(c.Generation, 1), d.timePtr(c.PausedAt), c.PausedMemory, c.Remaining.Milliseconds(),
			c.AutoPause, c.AutoPauseMemory, c.AutoResume, c.SnapshotID)
		if err != nil {
			return err
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
	c, err := getCapsule(ctx, s.reader(), id, "")
	if err != nil {
		return store.Capsule{}, fmt.Errorf("get capsule %s: %w", id, err)
	}
	return c, nil
}

// SetCapsuleExpiry sets the capsule's ExpiresAt to t. It is not a status
// change, so UpdatedAt stays.
func (s *Store) SetCapsuleExpiry(ctx context.Context, id string, t time.Time) error {
	ok, err := s.execOne(ctx, "UPDATE capsules SET expires_at = ? WHERE id = ?", s.d.time(t), id)
	if err != nil {
		return fmt.Errorf("set expiry of capsule %s: %w", id, err)
	}
	if !ok {
		return errdefs.NotFound("capsule %s not found", id)
	}
	return nil
}

// getCapsule reads one capsule through c, with lock appended to the
// SELECT (the dialect's RowLock, or ""); a missing one is ErrNotFound.
func getCapsule(ctx context.Context, c conn, id, lock string) (store.Capsule, error) {
	capsule, err := scanCapsule(c.d, c.row(ctx, "SELECT "+capsuleColumns+" FROM capsules WHERE id = ? "+lock, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Capsule{}, errdefs.NotFound("capsule %s not found", id)
	}
	return capsule, c.d.Kind(err)
}

// scanCapsule reads one row of capsuleColumns.
func scanCapsule(d *Dialect, row scanner) (store.Capsule, error) {
	var (
		c           store.Capsule
		remainingMS int64
		status      string
	)
	// The status into a string and the counts through intCol: database/sql
	// converts into a named string type or an int by reflection (and an
	// int through its text), which a list pays for on every row.
	err := row.Scan(&c.ID, &c.TeamID, &c.Template, &status, &c.Error, intCol{&c.VCPUs}, intCol{&c.MemoryMB}, intCol{&c.DiskMB},
		mapCol{&c.Metadata}, &c.Internet, listCol{&c.AllowOut}, listCol{&c.DenyOut},
		&c.HostID, &c.EnvdVersion, mapCol{&c.EnvVars}, &c.AccessToken,
		d.timeCol(&c.CreatedAt), d.timeCol(&c.UpdatedAt),
		d.nullTimeCol(&c.StartedAt), d.nullTimeCol(&c.ExpiresAt), d.nullTimeCol(&c.StoppedAt), &c.TrafficAccessToken,
		&c.Generation, d.nullTimeCol(&c.PausedAt), &c.PausedMemory, &remainingMS, &c.AutoPause, &c.AutoPauseMemory, &c.AutoResume, &c.SnapshotID)
	c.Remaining = time.Duration(remainingMS) * time.Millisecond
	c.Status = nestbox.Status(status)
	return c, err
}

// CapsuleEvents lists the status changes of capsule id, oldest first.
func (s *Store) CapsuleEvents(ctx context.Context, id string) ([]nestbox.CapsuleEvent, error) {
	rows, err := s.reader().query(ctx, `
		SELECT from_status, to_status, reason, at FROM capsule_events
		WHERE capsule_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("events of capsule %s: %w", id, err)
	}
	evs, err := collect(rows, func(row scanner) (nestbox.CapsuleEvent, error) {
		ev := nestbox.CapsuleEvent{CapsuleID: id}
		err := row.Scan(&ev.From, &ev.To, &ev.Reason, s.d.timeCol(&ev.At))
		return ev, err
	})
	if err != nil {
		return nil, fmt.Errorf("events of capsule %s: %w", id, err)
	}
	// CreateCapsule records a first event and events go with their
	// capsule, so no events means no capsule.
	if len(evs) == 0 {
		return nil, errdefs.NotFound("capsule %s not found", id)
	}
	return evs, nil
}

// insertEvent records a status change of capsule id.
func insertEvent(ctx context.Context, tx conn, id string, from, to nestbox.Status, reason string, at time.Time) error {
	_, err := tx.exec(ctx,
		"INSERT INTO capsule_events (capsule_id, from_status, to_status, reason, at) VALUES (?, ?, ?, ?, ?)",
		id, string(from), string(to), reason, tx.d.time(at))
	return err
}
