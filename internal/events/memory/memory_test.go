package memory

import (
	"context"
	"slices"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/events"
	"nestbox.dev/internal/events/eventstest"
)

func TestConformance(t *testing.T) {
	eventstest.Run(t, func(t *testing.T) events.Stream { return New() })
}

// TestGapMarkerPosition pins what the suite leaves open: the marker comes
// before the surviving events (all lost ones were older), and it counts them.
func TestGapMarkerPosition(t *testing.T) {
	s := newStream(4)
	defer s.Close()
	ch, err := s.Subscribe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		if err := s.Publish(context.Background(), ev(id)); err != nil {
			t.Fatal(err)
		}
	}
	// "a" may already sit in the delivery goroutine's hand; either way the
	// marker precedes the four newest events.
	var got []string
	for len(got) == 0 || got[len(got)-1] != "g" {
		var e nestbox.CapsuleEvent
		select {
		case e = <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("stuck after %v", got)
		}
		if e.To == "" {
			got = append(got, "gap")
			continue
		}
		got = append(got, e.CapsuleID)
	}
	want1 := []string{"a", "gap", "d", "e", "f", "g"}
	want2 := []string{"gap", "d", "e", "f", "g"}
	if !slices.Equal(got, want1) && !slices.Equal(got, want2) {
		t.Fatalf("got %v, want %v or %v", got, want1, want2)
	}
}

func ev(id string) nestbox.CapsuleEvent {
	return nestbox.CapsuleEvent{CapsuleID: id, To: nestbox.StatusRunning}
}
