package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
)

// CapsuleEvents lists the status changes of capsule id, oldest first.
func (s *Store) CapsuleEvents(ctx context.Context, id string) ([]nestbox.CapsuleEvent, error) {
	rows, err := s.read.QueryContext(ctx, `
		SELECT from_status, to_status, reason, at FROM capsule_events
		WHERE capsule_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("events of capsule %s: %w", id, err)
	}
	defer rows.Close()
	var evs []nestbox.CapsuleEvent
	for rows.Next() {
		ev := nestbox.CapsuleEvent{CapsuleID: id}
		if err := rows.Scan(&ev.From, &ev.To, &ev.Reason, timeCol{&ev.At}); err != nil {
			return nil, fmt.Errorf("events of capsule %s: %w", id, err)
		}
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
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
func insertEvent(ctx context.Context, tx *sql.Tx, id string, from, to nestbox.Status, reason string, at time.Time) error {
	_, err := tx.ExecContext(ctx,
		"INSERT INTO capsule_events (capsule_id, from_status, to_status, reason, at) VALUES (?, ?, ?, ?, ?)",
		id, string(from), string(to), reason, formatTime(at))
	return kindOf(err)
}
