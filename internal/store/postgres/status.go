package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
// The row is read first with SELECT ... FOR UPDATE: the event needs the
// status it leaves, and the row lock makes concurrent callers queue on the
// row; under READ COMMITTED each of them then reads the status the previous
// one committed. The UPDATE keeps its "status = ANY(from)" guard
// regardless: the compare-and-set is stated where the write happens.
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
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := getCapsule(ctx, tx, id, "FOR UPDATE")
		if err != nil {
			return kindOf(err)
		}
		if !slices.Contains(from, cur.Status) {
			out = cur
			return conflict(cur, from)
		}
		if u.Generation != 0 && cur.Generation != u.Generation {
			out = cur
			return errdefs.Conflict("capsule %s is at generation %d, not %d", cur.ID, cur.Generation, u.Generation)
		}
		query, args := statusUpdate(id, from, u, at)
		out, err = scanCapsule(tx.QueryRow(ctx, query, args...))
		if errors.Is(err, pgx.ErrNoRows) {
			// Unreachable while the row lock is held; kept so that a
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
	args := []any{id, statusStrings(from)}
	var set []string
	add := func(col string, v any) {
		args = append(args, v)
		set = append(set, col+" = $"+strconv.Itoa(len(args)))
	}
	add("status", string(u.To))
	add("updated_at", at)
	set = append(set, "generation = generation + 1")
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
		add("started_at", u.StartedAt)
	}
	if !u.ExpiresAt.IsZero() {
		add("expires_at", u.ExpiresAt)
	}
	if !u.StoppedAt.IsZero() {
		add("stopped_at", u.StoppedAt)
	}
	if p := u.Pause; p != nil {
		add("paused_at", p.At)
		add("paused_memory", p.Memory)
		add("remaining_ms", p.Remaining.Milliseconds())
	}
	query := "UPDATE capsules SET " + strings.Join(set, ", ") +
		" WHERE id = $1 AND status = ANY($2) RETURNING " + capsuleColumns
	return query, args
}

// conflict is the error of a compare-and-set that found c in none of the
// statuses in from.
func conflict(c store.Capsule, from []nestbox.Status) error {
	return errdefs.Conflict("capsule %s is %s, not %s", c.ID, c.Status, strings.Join(statusStrings(from), " or "))
}

// statusStrings is sts as a TEXT[] parameter.
func statusStrings(sts []nestbox.Status) []string {
	out := make([]string, len(sts))
	for i, st := range sts {
		out[i] = string(st)
	}
	return out
}
