package events_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/events"
)

// scriptedStream fails its first fails subscribes, and closes the channel
// of every subscription after delivering one event (none if empty), as a
// stream that drops its subscribers would.
type scriptedStream struct {
	mu    sync.Mutex
	fails int
	empty bool
	calls int
}

func (s *scriptedStream) Publish(context.Context, nestbox.CapsuleEvent) error { return nil }
func (s *scriptedStream) Close() error                                        { return nil }
func (s *scriptedStream) Backlog() int                                        { return 0 }

// Notify and Watch are not what Follow uses.
func (s *scriptedStream) Notify(context.Context, string) error  { return nil }
func (s *scriptedStream) Watch(context.Context, string, func()) {}

// Consume is not what Follow uses.
func (s *scriptedStream) Consume(context.Context, events.GroupConfig, func(context.Context, nestbox.CapsuleEvent) error) error {
	return errdefs.Unimplemented("consume")
}

func (s *scriptedStream) Subscribe(ctx context.Context) (<-chan nestbox.CapsuleEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls <= s.fails {
		return nil, errdefs.Unavailable("down")
	}
	ch := make(chan nestbox.CapsuleEvent, 1)
	defer close(ch)
	if s.empty {
		return ch, nil
	}
	ch <- nestbox.CapsuleEvent{CapsuleID: "c", To: nestbox.StatusRunning, Reason: "subscription " + string(rune('0'+s.calls))}
	return ch, nil
}

// TestFollowResubscribes: failed subscribes and dropped subscriptions are
// retried; each later subscription starts with a gap marker.
func TestFollowResubscribes(t *testing.T) {
	s := &scriptedStream{fails: 2}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []nestbox.CapsuleEvent
	done := make(chan struct{})
	go func() {
		defer close(done)
		events.Follow(ctx, s, slog.New(slog.DiscardHandler), func(ev nestbox.CapsuleEvent) {
			got = append(got, ev)
			if len(got) == 4 {
				cancel()
			}
		})
	}()
	<-done
	if len(got) < 4 {
		t.Fatalf("got %d events before the deadline, want 4: %+v", len(got), got)
	}
	// subscribe 3 (first success): an event; subscribe 4: a marker, then
	// an event.
	if got[0].To != nestbox.StatusRunning || got[1].To != "" || got[2].To != nestbox.StatusRunning || got[3].To != "" {
		t.Fatalf("events %+v: want event, gap marker, event, gap marker", got)
	}
	if got[0].Reason != "subscription 3" {
		t.Fatalf("first event %+v: want it from the third subscribe (two failed)", got[0])
	}
}

// TestFollowBacksOffEmptySubscriptions: a stream that accepts each
// subscription and drops it at once, without an event, is resubscribed
// after a doubling backoff (100, 200, 400, 800 ms: 4 subscribes in the
// first 1.2 s), not every 100 ms (12). Only an upper bound is checked: a
// slow machine makes fewer subscribes, never more.
func TestFollowBacksOffEmptySubscriptions(t *testing.T) {
	s := &scriptedStream{empty: true}
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	markers := 0
	events.Follow(ctx, s, slog.New(slog.DiscardHandler), func(ev nestbox.CapsuleEvent) {
		if ev.To != "" {
			t.Errorf("event %+v from a stream that sends none", ev)
		}
		markers++
	})
	s.mu.Lock()
	calls := s.calls
	s.mu.Unlock()
	if calls > 6 {
		t.Errorf("%d subscribes in 1.2 s to a stream that drops them empty, want at most 6 (the backoff was reset)", calls)
	}
	if calls == 0 || markers != calls-1 {
		t.Errorf("%d gap markers for %d subscribes, want one per resubscribe", markers, calls)
	}
}
