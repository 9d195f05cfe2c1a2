package eventstest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/events"
)

// groupTests are the suite's tests of Consume.
var groupTests = []struct {
	name string
	test func(t *testing.T, s events.Stream)
}{
	{"GroupSharesEvents", testGroupSharesEvents},
	{"GroupClaimsFromDeadConsumer", testGroupClaimsFromDeadConsumer},
	{"GroupAckRemovesPending", testGroupAckRemovesPending},
	{"GroupRetriesFailedHandler", testGroupRetriesFailedHandler},
	{"GroupInvalidConfig", testGroupInvalidConfig},
	{"GroupEndsOnClose", testGroupEndsOnClose},
}

// warmup is the CapsuleID of the events a test publishes until its group
// exists (Consume makes it in the background, and a group gets only the
// events published after it began).
const warmup = "warmup"

// consumer is a running Consume whose handler records what it handled.
type consumer struct {
	cancel context.CancelFunc
	done   chan error // Consume's result

	// mu guards the fields below it.
	mu      sync.Mutex
	handled []int // indices of event(i) handled successfully, in order
	seen    []int // indices handed to the handler, whatever it answered
	warm    bool  // a warmup event was handled
}

// hold, when it returns a non-nil error for an event, makes the handler
// fail with it instead of recording the event as handled.
type hold func(ctx context.Context, i int) error

// startConsumer runs Consume as cfg until the test ends or stop is called.
func startConsumer(t *testing.T, s events.Stream, cfg events.GroupConfig, h hold) *consumer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- s.Consume(ctx, cfg, func(ctx context.Context, ev nestbox.CapsuleEvent) error {
			if ev.CapsuleID == warmup {
				c.mu.Lock()
				c.warm = true
				c.mu.Unlock()
				return nil
			}
			i := index(ev)
			if i < 0 || ev != event(i) {
				return errors.New("not a test event") // recorded by nobody: fails the test by its absence
			}
			c.mu.Lock()
			c.seen = append(c.seen, i)
			c.mu.Unlock()
			if h != nil {
				if err := h(ctx, i); err != nil {
					return err
				}
			}
			c.mu.Lock()
			c.handled = append(c.handled, i)
			c.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// stop ends the Consume and waits for it to return.
func (c *consumer) stop(t *testing.T) {
	t.Helper()
	c.cancel()
	select {
	case err, ok := <-c.done:
		if ok && err != nil {
			t.Errorf("consume: %v", err)
		}
		if ok {
			close(c.done)
		}
	case <-time.After(patience):
		t.Fatalf("consume did not return within %s of its context's end", patience)
	}
}

func (c *consumer) snapshot() (handled, seen []int, warm bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.handled...), append([]int(nil), c.seen...), c.warm
}

// warmUp publishes warmup events until one of cs has handled one: the group
// exists from then on.
func warmUp(t *testing.T, s events.Stream, cs ...*consumer) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		if err := s.Publish(context.Background(), nestbox.CapsuleEvent{CapsuleID: warmup, From: nestbox.StatusStarting, To: nestbox.StatusRunning}); err != nil {
			t.Fatalf("publish a warmup event: %v", err)
		}
		for _, c := range cs {
			if _, _, warm := c.snapshot(); warm {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no consumer handled a warmup event within %s", patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantOnce checks that the consumers handled the events from..to-1 once
// each, together, and nothing else.
func wantOnce(t *testing.T, from, to int, cs ...*consumer) {
	t.Helper()
	count := map[int]int{}
	for k, c := range cs {
		handled, _, _ := c.snapshot()
		for _, i := range handled {
			if i < from || i >= to {
				t.Fatalf("consumer %d handled event %d, outside %d..%d", k, i, from, to-1)
			}
			count[i]++
		}
	}
	for i := from; i < to; i++ {
		if count[i] != 1 {
			t.Fatalf("event %d was handled %d times, want once across the group", i, count[i])
		}
	}
}

// waitHandled waits until the consumers handled n events together.
func waitHandled(t *testing.T, n int, cs ...*consumer) {
	t.Helper()
	waitFor(t, "the group to handle the events", func() bool {
		got := 0
		for _, c := range cs {
			handled, _, _ := c.snapshot()
			got += len(handled)
		}
		return got >= n
	})
}

// testGroupSharesEvents: two consumers of one group each get their own
// events, and together all of them, once. The first is held in its handler
// while the second takes the rest, so that both get some; then both run
// freely.
func testGroupSharesEvents(t *testing.T, s events.Stream) {
	const n = 100
	// Long enough that nothing is claimed again while the test runs.
	cfg := events.GroupConfig{Group: "g", Consumer: "a", ClaimIdle: 10 * patience}
	release := make(chan struct{})
	a := startConsumer(t, s, cfg, func(ctx context.Context, i int) error {
		if i == 0 {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	warmUp(t, s, a)
	publish(t, s, 0, 1)
	waitFor(t, "consumer a to take event 0", func() bool { _, seen, _ := a.snapshot(); return len(seen) == 1 })
	cfg.Consumer = "b"
	b := startConsumer(t, s, cfg, nil)
	publish(t, s, 1, n)
	waitHandled(t, n-1, b)
	close(release)
	waitHandled(t, n, a, b)
	if handled, _, _ := a.snapshot(); len(handled) != 1 {
		t.Fatalf("consumer a handled %v while it was held in event 0, want only 0", handled)
	}
	// Both free: still each event once.
	publish(t, s, n, 3*n)
	waitHandled(t, 3*n, a, b)
	wantOnce(t, 0, 3*n, a, b)
}

// testGroupClaimsFromDeadConsumer: events handed to a consumer that ended
// without acknowledging them go to another member once idle.
func testGroupClaimsFromDeadConsumer(t *testing.T, s events.Stream) {
	const n = 10
	cfg := events.GroupConfig{Group: "g", Consumer: "a", ClaimIdle: 300 * time.Millisecond}
	// a takes events and never finishes one: it dies in its handler.
	a := startConsumer(t, s, cfg, func(ctx context.Context, i int) error {
		<-ctx.Done()
		return ctx.Err()
	})
	warmUp(t, s, a)
	publish(t, s, 0, n)
	waitFor(t, "consumer a to take an event", func() bool { _, seen, _ := a.snapshot(); return len(seen) > 0 })
	a.stop(t)
	cfg.Consumer = "b"
	b := startConsumer(t, s, cfg, nil)
	waitHandled(t, n, b)
	wantOnce(t, 0, n, b)
	if handled, _, _ := a.snapshot(); len(handled) != 0 {
		t.Fatalf("consumer a handled %v, want none", handled)
	}
}

// testGroupAckRemovesPending: events a consumer handled are acknowledged:
// a member that claims whatever is pending at once gets none of them.
func testGroupAckRemovesPending(t *testing.T, s events.Stream) {
	const n = 10
	cfg := events.GroupConfig{Group: "g", Consumer: "a", ClaimIdle: 10 * patience}
	a := startConsumer(t, s, cfg, nil)
	warmUp(t, s, a)
	publish(t, s, 0, n)
	waitHandled(t, n, a)
	a.stop(t)
	// b claims every entry pending for a millisecond, before it reads
	// new ones: event n must be the first it sees.
	cfg.Consumer, cfg.ClaimIdle = "b", time.Millisecond
	b := startConsumer(t, s, cfg, nil)
	publish(t, s, n, n+1)
	waitHandled(t, 1, b)
	if _, seen, _ := b.snapshot(); seen[0] != n {
		t.Fatalf("consumer b saw %v: events %d..%d were handled and acknowledged by a, want only %d", seen, 0, n-1, n)
	}
	wantOnce(t, 0, n, a)
}

// testGroupRetriesFailedHandler: an event whose handler failed is handed
// out again after the claim idle time (to the only member here).
func testGroupRetriesFailedHandler(t *testing.T, s events.Stream) {
	cfg := events.GroupConfig{Group: "g", Consumer: "a", ClaimIdle: 200 * time.Millisecond}
	var (
		mu    sync.Mutex
		tries int
	)
	a := startConsumer(t, s, cfg, func(_ context.Context, i int) error {
		mu.Lock()
		defer mu.Unlock()
		if tries++; tries < 3 {
			return errdefs.Unavailable("store down (try %d)", tries)
		}
		return nil
	})
	warmUp(t, s, a)
	publish(t, s, 0, 1)
	waitHandled(t, 1, a)
	wantOnce(t, 0, 1, a)
	if _, seen, _ := a.snapshot(); len(seen) != 3 {
		t.Fatalf("event 0 was handed out %d times, want 3 (two failures, then handled)", len(seen))
	}
}

func testGroupInvalidConfig(t *testing.T, s events.Stream) {
	nop := func(context.Context, nestbox.CapsuleEvent) error { return nil }
	for _, cfg := range []events.GroupConfig{
		{Consumer: "a"},
		{Group: "g"},
		{Group: "g", Consumer: "a", ClaimIdle: -time.Second},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		err := s.Consume(ctx, cfg, nop)
		cancel()
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Fatalf("consume with %+v: %v, want an invalid-argument error", cfg, err)
		}
	}
}

// testGroupEndsOnClose: Close ends a Consume; a Consume after Close fails
// or returns at once.
func testGroupEndsOnClose(t *testing.T, s events.Stream) {
	cfg := events.GroupConfig{Group: "g", Consumer: "a"}
	a := startConsumer(t, s, cfg, nil)
	warmUp(t, s, a)
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("consume after close: %v", err)
		}
		close(a.done)
	case <-time.After(patience):
		t.Fatalf("consume still runs %s after Close", patience)
	}
	done := make(chan error, 1)
	go func() {
		done <- s.Consume(context.Background(), cfg, func(context.Context, nestbox.CapsuleEvent) error { return nil })
	}()
	select {
	case <-done:
	case <-time.After(patience):
		t.Fatal("a Consume started after Close did not return")
	}
}
