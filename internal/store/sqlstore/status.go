package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// UpdateCapsuleStatus moves capsule id from one of the statuses in from to
// u.To, applies u's non-zero fields, sets UpdatedAt to u.At (or now) and
// records the change as an event, all in one transaction. It returns the
// capsule as updated. If the capsule's status is not in from it changes
// nothing and returns the capsule as it is with an ErrConflict error.
//
// The current row is read first, with the dialect's RowLock: the event
// needs the status it leaves, and nobody may change the row between that
// read and the update. PostgreSQL's FOR UPDATE makes concurrent callers
// queue on the row, and under READ COMMITTED each then reads the status
// the previous one committed; SQLite's transaction began IMMEDIATE and
// already holds the write lock. The update keeps its "status IN (from)"
// guard regardless: the compare-and-set is stated where the write happens.
func (s *Store) UpdateCapsuleStatus(ctx context.Context, id string, from []nestbox.Status, u store.StatusUpdate) (store.Capsule, error) {
	if u.To == "" {
		return store.Capsule{}, errdefs.Invalid("update capsule %s: no status to move to", id)
	}
	if len(from) == 0 {
		return store.Capsule{}, errdefs.Invalid("update capsule %s: no status to move from", id)
	}
	at := u.At
	if at.IsZero() {
		at = time.Now()
	}
	var out store.Capsule
	err := s.inTx(ctx, func(tx conn) error {
		cur, err := getCapsule(ctx, tx, id, s.d.RowLock)
		if err != nil {
			return err
		}
		if !slices.Contains(from, cur.Status) {
			out = cur
			return conflict(cur, from)
		}
		if u.Generation != 0 && cur.Generation != u.Generation {
			out = cur
			return errdefs.Conflict("capsule %s is at generation %d, not %d", cur.ID, cur.Generation, u.Generation)
		}
		query, args := s.statusUpdate(id, from, u, at)
		out, err = scanCapsule(&s.d, tx.row(ctx, query, args...))
		if errors.Is(err, sql.ErrNoRows) {
			// Unreachable while the lock is held; kept so that a broken
			// assumption shows as a conflict, not a lost update.
			out = cur
			return conflict(cur, from)
		}
		if err != nil {
			return s.d.Kind(err)
		}
		return insertEvent(ctx, tx, id, cur.Status, u.To, u.Reason, at)
	})
	if err != nil {
		return out, fmt.Errorf("update capsule %s: %w", id, err)
	}
	return out, nil
}

// statusUpdate builds the compare-and-set UPDATE of u. Zero fields of u
// are left out, so their columns keep their values.
func (s *Store) statusUpdate(id string, from []nestbox.Status, u store.StatusUpdate, at time.Time) (string, []any) {
	d := &s.d
	set := []string{"status = ?", "updated_at = ?", "generation = generation + 1"}
	args := []any{string(u.To), d.time(at)}
	add := func(col string, v any) {
		set = append(set, col+" = ?")
		args = append(args, v)
	}
	if u.To == nestbox.StatusError {
		add("error", u.Reason)
	}
	if u.HostID != "" {
		add("host_id", u.HostID)
	}
	if u.EnvdVersion != "" {
		add("envd_version", u.EnvdVersion)
	}
	if u.DiskMB > 0 {
		add("disk_mb", u.DiskMB)
	}
	if !u.StartedAt.IsZero() {
		add("started_at", d.time(u.StartedAt))
	}
	if !u.ExpiresAt.IsZero() {
		add("expires_at", d.time(u.ExpiresAt))
	}
	if !u.StoppedAt.IsZero() {
		add("stopped_at", d.time(u.StoppedAt))
	}
	if p := u.Pause; p != nil {
		add("paused_at", d.time(p.At))
		add("paused_memory", p.Memory)
		add("remaining_ms", p.Remaining.Milliseconds())
	}
	args = append(args, id)
	for _, st := range from {
		args = append(args, string(st))
	}
	query := "UPDATE capsules SET " + strings.Join(set, ", ") +
		" WHERE id = ? AND status IN (" + placeholders(len(from)) + ") RETURNING " + capsuleColumns
	return query, args
}

// conflict is the error of a compare-and-set that found c in none of the
// statuses in from.
func conflict(c store.Capsule, from []nestbox.Status) error {
	want := make([]string, len(from))
	for i, st := range from {
		want[i] = string(st)
	}
	return errdefs.Conflict("capsule %s is %s, not %s", c.ID, c.Status, strings.Join(want, " or "))
}
