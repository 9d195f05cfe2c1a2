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
// again after a backoff that doubles from 100 ms up to 10 s and starts over
// after each successful Subscribe. Every subscription after the first successful one
// begins with a gap marker (an event with To == ""): events published
// meanwhile were missed, and fn must re-read the store if it cares.
//
// fn runs on Follow's goroutine, one event at a time; Follow returns when
// ctx is done.
func Follow(ctx context.Context, s Stream, log *slog.Logger, fn func(nestbox.CapsuleEvent)) {
	var (
		backoff    time.Duration
		subscribed bool // once, ever
	)
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			backoff = min(max(2*backoff, followFirstBackoff), followMaxBackoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		ch, err := s.Subscribe(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("subscribe to capsule events; retrying", "err", err, "in", min(max(2*backoff, followFirstBackoff), followMaxBackoff))
			}
			continue
		}
		backoff = 0
		if subscribed {
			log.Info("subscribed to capsule events again")
			fn(nestbox.CapsuleEvent{Reason: "resubscribed to the event stream", At: time.Now().UTC()})
		}
		subscribed = true
		for ev := range ch {
			fn(ev)
		}
	}
}
