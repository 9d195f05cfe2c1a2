package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
)

// CapsuleEvents lists the status changes of capsule id, oldest first.
func (s *Store) CapsuleEvents(ctx context.Context, id string) ([]nestbox.CapsuleEvent, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT from_status, to_status, reason, at FROM capsule_events
		WHERE capsule_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("events of capsule %s: %w", id, err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (nestbox.CapsuleEvent, error) {
		ev := nestbox.CapsuleEvent{CapsuleID: id}
		err := row.Scan(&ev.From, &ev.To, &ev.Reason, &ev.At)
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
func insertEvent(ctx context.Context, tx pgx.Tx, id string, from, to nestbox.Status, reason string, at time.Time) error {
	_, err := tx.Exec(ctx,
		"INSERT INTO capsule_events (capsule_id, from_status, to_status, reason, at) VALUES ($1, $2, $3, $4, $5)",
		id, string(from), string(to), reason, at)
	return kindOf(err)
}
