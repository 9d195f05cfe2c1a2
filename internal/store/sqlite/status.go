package sqlite

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
// The current row is read first: the event needs the status it leaves,
// and the transaction began IMMEDIATE, so it already holds the write lock
// and nobody can change the row between that read and the update. The
// update keeps its "status IN (from)" guard regardless: the
// compare-and-set is stated where the write happens.
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
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := getCapsule(ctx, tx, id)
		if err != nil {
			return err
		}
		if !slices.Contains(from, cur.Status) {
			out = cur
			return conflict(cur, from)
		}
		if u.Generation != 0 && cur.Generation != u.Generation {
			out = cur
			return generationConflict(cur, u.Generation)
		}
		query, args := statusUpdate(id, from, u, at)
		out, err = scanCapsule(tx.QueryRowContext(ctx, query, args...))
		if errors.Is(err, sql.ErrNoRows) {
			// Unreachable while the write lock is held; kept so that a
			// broken assumption shows as a conflict, not a lost update.
			out = cur
			return conflict(cur, from)
		}
		if err != nil {
			return kindOf(err)
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
func statusUpdate(id string, from []nestbox.Status, u store.StatusUpdate, at time.Time) (string, []any) {
	set := []string{"status = ?", "updated_at = ?", "generation = generation + 1"}
	args := []any{string(u.To), formatTime(at)}
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
	if !u.StartedAt.IsZero() {
		add("started_at", formatTime(u.StartedAt))
	}
	if !u.ExpiresAt.IsZero() {
		add("expires_at", formatTime(u.ExpiresAt))
	}
	if !u.StoppedAt.IsZero() {
		add("stopped_at", formatTime(u.StoppedAt))
	}
	if p := u.Pause; p != nil {
		add("paused_at", formatTime(p.At))
		add("paused_memory", boolInt(p.Memory))
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

// generationConflict is the error of a compare-and-set made from a
// generation of c that is no longer current.
func generationConflict(c store.Capsule, want int64) error {
	return errdefs.Conflict("capsule %s is at generation %d, not %d", c.ID, c.Generation, want)
}

// placeholders is "?, ?, ?" for n parameters.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
