package events

import (
	"testing"

	"nestbox.dev"
)

// TestQueueOverflowAndMarkers: a full queue drops the oldest events and
// delivers one marker before the survivors; back-to-back markers merge.
func TestQueueOverflowAndMarkers(t *testing.T) {
	q := NewQueue(3)
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		q.Push(nestbox.CapsuleEvent{CapsuleID: id, To: nestbox.StatusRunning})
	}
	q.Push(GapMarker("one"))
	q.Push(GapMarker("two")) // merged with "one"
	go q.Run()
	defer q.Stop()
	var got []string
	for range 4 {
		ev := <-q.Out()
		if ev.To == "" {
			got = append(got, "gap")
		} else {
			got = append(got, ev.CapsuleID)
		}
	}
	// a, b, c were dropped as d, e and the marker arrived.
	want := []string{"gap", "d", "e", "gap"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	}
	q.Stop()
	if _, ok := <-q.Out(); ok {
		t.Fatal("Out is not closed after Stop")
	}
}
