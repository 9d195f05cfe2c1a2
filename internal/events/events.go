// Package events is the control plane's stream of capsule state changes.
// Stream is a contract with one conformance suite (eventstest) that every
// implementation runs: in-process (internal/events/memory) for a single
// machine today, Redis Streams for fleets next. Only the control plane
// imports it.
//
// Events are published after the store has recorded the change; a
// subscriber uses them to wake waiters and evict caches (every control plane
// sees every event: Subscribe), and, as a fallback writer, to apply a change
// the publisher could not (one control plane applies each event: Consume,
// through a consumer group; the store's compare-and-set makes applying one
// twice harmless, the group makes it rare).
package events

import (
	"context"
	"time"

	"nestbox.dev"
)

// DefaultClaimIdle is GroupConfig.ClaimIdle's default.
const DefaultClaimIdle = 30 * time.Second

// GroupConfig names a consumer of a consumer group (Stream.Consume).
type GroupConfig struct {
	// Group names the consumer group. Consumers of one group, in any
	// process that shares the stream, share its events: each event goes
	// to one of them. Required.
	Group string
	// Consumer names this consumer within the group: unique per process
	// (a restarted process may reuse its name). Required.
	Consumer string
	// ClaimIdle is how long an event may stay delivered to a consumer
	// without being acknowledged before another member of the group (or
	// the same one) takes it over: the consumer died, or its handler
	// failed. Zero means DefaultClaimIdle.
	ClaimIdle time.Duration
}

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
	// Consume joins cfg.Group as cfg.Consumer and calls handle with the
	// group's events, one at a time, until ctx is done or the Stream is
	// closed; then it returns nil. The group begins at the first Consume
	// of any of its members and gets the events published from then on.
	// Each event is handed to one member; when handle returns nil it is
	// acknowledged and handed to no one again. When handle fails, or its
	// consumer ends before handle returned, the event stays pending and
	// is handed again to a member (this one included) once it has been
	// pending for cfg.ClaimIdle. So handle sees an event at least once
	// while the stream keeps it, and must be idempotent. Consume delivers
	// no gap markers: an event the stream lost (trimmed, Redis restarted
	// empty) is never handed out. Events reach one consumer in publish
	// order, but two consumers handle theirs concurrently. Consume rides
	// out the stream's failures by itself; it fails only for a bad cfg
	// (errdefs.ErrInvalid) or a Stream closed before it started
	// (errdefs.ErrUnavailable).
	Consume(ctx context.Context, cfg GroupConfig, handle func(context.Context, nestbox.CapsuleEvent) error) error
	// Notify tells every Watch of topic, in this process and in every
	// other that shares the stream, that something changed: a cache
	// must drop what it holds (API keys revoked). A notice carries
	// nothing, is not kept, and notices may coalesce.
	Notify(ctx context.Context, topic string) error
	// Watch calls fn once it listens for notices of topic, and for each
	// notice after that, until ctx is done or the Stream is closed; it
	// also calls fn whenever it listens again after a break (a lost
	// connection), since notices may have been missed meanwhile. fn runs
	// on Watch's goroutine, one call at a time.
	Watch(ctx context.Context, topic string, fn func())
	// Backlog is how many events this process's subscriptions hold
	// undelivered, together (a metric: a subscription whose backlog
	// reaches its buffer starts losing events).
	Backlog() int
	Close() error
}
