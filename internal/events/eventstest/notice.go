package eventstest

import (
	"context"
	"sync"
	"testing"
	"time"

	"nestbox.dev/internal/events"
)

// noticeTests are the suite's tests of Notify and Watch.
var noticeTests = []struct {
	name string
	test func(t *testing.T, s events.Stream)
}{
	{"WatchSeesNotify", testWatchSeesNotify},
	{"WatchEndsOnClose", testWatchEndsOnClose},
}

// watch runs Watch of topic until the test ends and counts fn's calls.
type watch struct {
	mu    sync.Mutex
	calls int
	done  chan struct{}
}

func startWatch(t *testing.T, ctx context.Context, s events.Stream, topic string) *watch {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	w := &watch{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		s.Watch(ctx, topic, func() {
			w.mu.Lock()
			w.calls++
			w.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-w.done:
		case <-time.After(patience):
			t.Errorf("watch of %s did not return within %s of its context's end", topic, patience)
		}
	})
	return w
}

func (w *watch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls
}

// testWatchSeesNotify: a Watch calls fn once it listens, and again for a
// notice of its topic; a notice of another topic does not reach it. Two
// watchers of the topic both see the notice.
func testWatchSeesNotify(t *testing.T, s events.Stream) {
	ctx := context.Background()
	a, b := startWatch(t, ctx, s, "keys"), startWatch(t, ctx, s, "keys")
	other := startWatch(t, ctx, s, "other")
	waitFor(t, "the watchers to listen", func() bool { return a.count() >= 1 && b.count() >= 1 && other.count() >= 1 })
	if err := s.Notify(ctx, "keys"); err != nil {
		t.Fatalf("notify: %v", err)
	}
	waitFor(t, "both watchers of the topic to see the notice", func() bool { return a.count() >= 2 && b.count() >= 2 })
	// Notices of one stream reach a watcher in order: once a later
	// notice of "other" arrived, one of "keys" would have too.
	if err := s.Notify(ctx, "other"); err != nil {
		t.Fatalf("notify: %v", err)
	}
	waitFor(t, "the other topic's watcher to see its notice", func() bool { return other.count() >= 2 })
	if n := other.count(); n != 2 {
		t.Fatalf("the watcher of another topic was called %d times, want 2 (listening, its own notice)", n)
	}
}

// testWatchEndsOnClose: Close ends a Watch; a Notify after Close fails.
func testWatchEndsOnClose(t *testing.T, s events.Stream) {
	w := startWatch(t, context.Background(), s, "keys")
	waitFor(t, "the watcher to listen", func() bool { return w.count() >= 1 })
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case <-w.done:
	case <-time.After(patience):
		t.Fatalf("watch still runs %s after Close", patience)
	}
	if err := s.Notify(context.Background(), "keys"); err == nil {
		t.Fatal("notify after close: got nil error")
	}
}
