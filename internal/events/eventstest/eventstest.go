// Package eventstest is the conformance suite of events.Stream: every
// implementation's tests call Run with a constructor, so that all of them
// keep the contract that events.Stream documents. Imported by _test.go files
// only.
package eventstest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/events"
)

// Buffer bounds the suite assumes of an implementation: a subscriber holds
// at least MinBuffer undelivered events and at most MaxBuffer before it
// starts losing the oldest.
const (
	MinBuffer = 512
	MaxBuffer = 4096
)

// patience bounds every wait of the suite. It is generous on purpose: it
// tells "stuck" from "done", and says nothing about speed.
const patience = 30 * time.Second

// Run runs the suite. newStream returns a fresh, open Stream for each
// subtest; the suite closes it (Close must be safe to call twice, since a
// constructor may also register its own cleanup).
func Run(t *testing.T, newStream func(t *testing.T) events.Stream) {
	tests := []struct {
		name string
		test func(t *testing.T, s events.Stream)
	}{
		{"InOrderAfterSubscribe", testInOrderAfterSubscribe},
		{"EverySubscriberGetsAll", testEverySubscriberGetsAll},
		{"Backlog", testBacklog},
		{"CancelClosesChannel", testCancelClosesChannel},
		{"PublishDoesNotBlock", testPublishDoesNotBlock},
		{"GapMarkerAfterOverflow", testGapMarkerAfterOverflow},
		{"ConcurrentPublishers", testConcurrentPublishers},
		{"Close", testClose},
	}
	for _, tc := range append(append(tests, groupTests...), noticeTests...) {
		t.Run(tc.name, func(t *testing.T) {
			s := newStream(t)
			t.Cleanup(func() { s.Close() })
			tc.test(t, s)
		})
	}
}

// event returns the i-th test event; its CapsuleID carries i.
func event(i int) nestbox.CapsuleEvent {
	return nestbox.CapsuleEvent{
		CapsuleID: "c-" + strconv.Itoa(i),
		From:      nestbox.StatusStarting,
		To:        nestbox.StatusRunning,
		Reason:    "test",
		At:        time.Unix(1_700_000_000+int64(i), 0).UTC(),
	}
}

// index returns the i of an event made by event, or -1.
func index(ev nestbox.CapsuleEvent) int {
	var i int
	if _, err := fmt.Sscanf(ev.CapsuleID, "c-%d", &i); err != nil {
		return -1
	}
	return i
}

func isGap(ev nestbox.CapsuleEvent) bool { return ev.To == "" }

func publish(t *testing.T, s events.Stream, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := s.Publish(context.Background(), event(i)); err != nil {
			t.Fatalf("publish event %d: %v", i, err)
		}
	}
}

func subscribe(t *testing.T, s events.Stream) <-chan nestbox.CapsuleEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return ch
}

// receive reads n events from ch, failing on a gap marker, a closed channel
// or a wait longer than patience.
func receive(t *testing.T, ch <-chan nestbox.CapsuleEvent, n int) []nestbox.CapsuleEvent {
	t.Helper()
	timeout := time.NewTimer(patience)
	defer timeout.Stop()
	out := make([]nestbox.CapsuleEvent, 0, n)
	for len(out) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d events", len(out), n)
			}
			if isGap(ev) {
				t.Fatalf("unexpected gap marker after %d of %d events: %+v", len(out), n, ev)
			}
			out = append(out, ev)
		case <-timeout.C:
			t.Fatalf("got %d of %d events within %s", len(out), n, patience)
		}
	}
	return out
}

// wantSequence checks that got is the events from..from+len(got)-1, in order.
func wantSequence(t *testing.T, got []nestbox.CapsuleEvent, from int) {
	t.Helper()
	for k, ev := range got {
		if want := event(from + k); ev != want {
			t.Fatalf("event %d: got %+v, want %+v", k, ev, want)
		}
	}
}

func testInOrderAfterSubscribe(t *testing.T, s events.Stream) {
	publish(t, s, 0, 5) // before Subscribe: never delivered
	ch := subscribe(t, s)
	publish(t, s, 5, 105)
	wantSequence(t, receive(t, ch, 100), 5)
}

func testEverySubscriberGetsAll(t *testing.T, s events.Stream) {
	const subscribers, n = 4, 200
	var chans []<-chan nestbox.CapsuleEvent
	for range subscribers {
		chans = append(chans, subscribe(t, s))
	}
	publish(t, s, 0, n)
	for _, ch := range chans {
		wantSequence(t, receive(t, ch, n), 0)
	}
}

func testCancelClosesChannel(t *testing.T, s events.Stream) {
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	other := subscribe(t, s)
	publish(t, s, 0, 3)
	cancel()
	// Events may still arrive, but the channel must close.
	timeout := time.After(patience)
	for open := true; open; {
		select {
		case _, open = <-ch:
		case <-timeout:
			t.Fatalf("channel still open %s after its context was cancelled", patience)
		}
	}
	// The stream and its other subscribers are unaffected.
	publish(t, s, 3, 6)
	wantSequence(t, receive(t, other, 6), 0)
}

// overflow is how many events the overflow tests publish: ten buffers.
const overflow = 10 * MaxBuffer

func testPublishDoesNotBlock(t *testing.T, s events.Stream) {
	subscribe(t, s) // never read
	done := make(chan error, 1)
	go func() {
		for i := range overflow {
			if err := s.Publish(context.Background(), event(i)); err != nil {
				done <- fmt.Errorf("publish event %d: %w", i, err)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(patience):
		t.Fatalf("publishing %d events to a subscriber that does not read did not finish within %s", overflow, patience)
	}
}

func testGapMarkerAfterOverflow(t *testing.T, s events.Stream) {
	ch := subscribe(t, s)
	publish(t, s, 0, overflow) // nobody reads meanwhile
	last := overflow - 1
	var (
		gaps, kept int
		prev       = -1
	)
	timeout := time.After(patience)
	for prev != last {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed before the last event (previous was %d)", prev)
			}
			if isGap(ev) {
				gaps++
				continue
			}
			i := index(ev)
			if i <= prev || ev != event(i) {
				t.Fatalf("got %+v after event %d: events must stay in publish order", ev, prev)
			}
			if i > prev+1 && gaps == 0 {
				t.Fatalf("events %d to %d were lost without a gap marker before event %d", prev+1, i-1, i)
			}
			prev = i
			kept++
		case <-timeout:
			t.Fatalf("the newest event %d did not arrive within %s (last was %d)", last, patience, prev)
		}
	}
	if gaps == 0 {
		t.Fatalf("no gap marker after %d events were published to a subscriber that did not read", overflow)
	}
	if kept >= overflow {
		t.Fatalf("all %d events kept: the buffer is larger than MaxBuffer=%d", kept, MaxBuffer)
	}
	// After the gap the subscriber is live again: no further gap.
	publish(t, s, overflow, overflow+10)
	wantSequence(t, receive(t, ch, 10), overflow)
}

func testConcurrentPublishers(t *testing.T, s events.Stream) {
	const publishers, each = 8, 50 // fewer than MinBuffer in total
	chans := []<-chan nestbox.CapsuleEvent{subscribe(t, s), subscribe(t, s)}
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Go(func() {
			for k := range each {
				if err := s.Publish(context.Background(), event(p*each+k)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish: %v", err)
	}
	var orders [][]nestbox.CapsuleEvent
	for _, ch := range chans {
		got := receive(t, ch, publishers*each)
		// Each publisher's events arrive in the order it published them.
		next := make([]int, publishers)
		for _, ev := range got {
			i := index(ev)
			p := i / each
			if i < 0 || p >= publishers {
				t.Fatalf("got %+v, which no publisher sent", ev)
			}
			if i != p*each+next[p] {
				t.Fatalf("got %+v, want event %d of publisher %d next", ev, p*each+next[p], p)
			}
			next[p]++
		}
		orders = append(orders, got)
	}
	// And all subscribers see one order.
	for k := range orders[0] {
		if orders[0][k] != orders[1][k] {
			t.Fatalf("subscribers disagree at position %d: %+v and %+v", k, orders[0][k], orders[1][k])
		}
	}
}

func testClose(t *testing.T, s events.Stream) {
	ch := subscribe(t, s)
	idle := subscribe(t, s) // full and unread when Close comes
	publish(t, s, 0, 2*MaxBuffer)
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for _, c := range []<-chan nestbox.CapsuleEvent{ch, idle} {
		timeout := time.After(patience)
		for open := true; open; {
			select {
			case _, open = <-c:
			case <-timeout:
				t.Fatalf("subscriber channel still open %s after Close", patience)
			}
		}
	}
	if err := s.Publish(context.Background(), event(0)); err == nil {
		t.Fatal("publish after close: got nil error")
	}
	// Subscribing after Close fails or gives a closed channel.
	if c, err := s.Subscribe(context.Background()); err == nil {
		select {
		case _, open := <-c:
			if open {
				t.Fatal("subscribe after close delivered an event")
			}
		case <-time.After(patience):
			t.Fatal("subscribe after close: channel neither failed nor closed")
		}
	}
}

// testBacklog: events a subscriber has not read are its backlog (but the
// one its delivery goroutine holds, ready to hand over), and reading them
// empties it.
func testBacklog(t *testing.T, s events.Stream) {
	ch := subscribe(t, s)
	if n := s.Backlog(); n != 0 {
		t.Fatalf("backlog before any publish: %d, want 0", n)
	}
	publish(t, s, 0, 5)
	waitFor(t, "a backlog of 4 (5 unread, one in hand)", func() bool { return s.Backlog() == 4 })
	wantSequence(t, receive(t, ch, 5), 0)
	waitFor(t, "an empty backlog after reading", func() bool { return s.Backlog() == 0 })
}

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", patience, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
