// Package events is the control plane's stream of capsule state changes.
// Stream is a contract with one conformance suite (eventstest) that every
// implementation runs: in-process (internal/events/memory) for a single
// machine today, Redis Streams for fleets next. Only the control plane
// imports it.
//
// Events are published after the store has recorded the change; a
// subscriber uses them to wake waiters and, as a fallback writer, to apply a
// change the publisher could not (the store's compare-and-set makes applying
// one twice harmless).
package events

import (
	"context"

	"nestbox.dev"
)

// Stream is a publish/subscribe log of capsule events. Implementations are
// safe for concurrent use.
type Stream interface {
	// Publish appends an event. It does not wait for subscribers.
	Publish(ctx context.Context, ev nestbox.CapsuleEvent) error
	// Subscribe delivers every event published after it returns, in
	// publish order, until ctx is done; then the channel is closed. A
	// subscriber that falls more than a buffer behind loses the oldest
	// undelivered events rather than blocking publishers, and is told so
	// by an event with To == "" (a gap marker): it must re-read the store.
	Subscribe(ctx context.Context) (<-chan nestbox.CapsuleEvent, error)
	// Backlog is how many events this process's subscriptions hold
	// undelivered, together (a metric: a subscription whose backlog
	// reaches its buffer starts losing events).
	Backlog() int
	Close() error
}
