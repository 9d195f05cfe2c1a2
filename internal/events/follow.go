package events

import (
	"context"
	"log/slog"
	"time"

	"nestbox.dev"
)

// Backoff of Follow between two subscriptions.
const (
	followFirstBackoff = 100 * time.Millisecond
	followMaxBackoff   = 10 * time.Second
)

// Follow subscribes to s and calls fn with every event until ctx is done.
// It never gives up: when Subscribe fails, or a subscription's channel
// closes while ctx is still live (the stream dropped it), it subscribes
// again after a backoff that doubles from 100 ms up to 10 s. The backoff
// starts over only after a subscription that delivered at least one
// event: a stream that accepts and at once drops its subscribers is
// retried ever more slowly, not every 100 ms. Every subscription after
// the first successful one begins with a gap marker (an event with
// To == ""): events published meanwhile were missed, and fn must re-read
// the store if it cares.
//
// fn runs on Follow's goroutine, one event at a time; Follow returns when
// ctx is done.
func Follow(ctx context.Context, s Stream, log *slog.Logger, fn func(nestbox.CapsuleEvent)) {
	var (
		backoff    time.Duration // the last wait; 0 before the first
		subscribed bool          // once, ever
	)
	for ctx.Err() == nil {
		ch, err := s.Subscribe(ctx)
		if err == nil {
			if subscribed {
				log.Info("subscribed to capsule events again")
				fn(nestbox.CapsuleEvent{Reason: "resubscribed to the event stream", At: time.Now().UTC()})
			}
			subscribed = true
			delivered := false
			for ev := range ch {
				fn(ev)
				delivered = true
			}
			if delivered {
				backoff = 0
			}
		}
		backoff = min(max(2*backoff, followFirstBackoff), followMaxBackoff)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Warn("subscribe to capsule events; retrying", "err", err, "in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}
