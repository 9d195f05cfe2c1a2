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
// of every subscription after delivering one event, as a stream that drops
// its subscribers would.
type scriptedStream struct {
	mu    sync.Mutex
	fails int
	calls int
}

func (s *scriptedStream) Publish(context.Context, nestbox.CapsuleEvent) error { return nil }
func (s *scriptedStream) Close() error                                        { return nil }

func (s *scriptedStream) Subscribe(ctx context.Context) (<-chan nestbox.CapsuleEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls <= s.fails {
		return nil, errdefs.Unavailable("down")
	}
	ch := make(chan nestbox.CapsuleEvent, 1)
	ch <- nestbox.CapsuleEvent{CapsuleID: "c", To: nestbox.StatusRunning, Reason: "subscription " + string(rune('0'+s.calls))}
	close(ch)
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
