package redis

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"nestbox.dev"
	"nestbox.dev/internal/events"
	"nestbox.dev/internal/events/eventstest"
	"nestbox.dev/internal/testenv"
)

const patience = 30 * time.Second

// testConfig returns a Config for the Redis of the test machine
// (NESTBOX_TEST_REDIS_URL, else the private server scripts/test-services.sh
// starts, never one the machine happens to run) with a key of its own,
// deleted when the test ends: other packages' tests may share the server.
func testConfig(t *testing.T) Config {
	t.Helper()
	url := os.Getenv("NESTBOX_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:56379/0"
	}
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatalf("NESTBOX_TEST_REDIS_URL %q: %v", url, err)
	}
	admin := goredis.NewClient(opts)
	t.Cleanup(func() { admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.Ping(ctx).Err(); err != nil {
		testenv.Missing(t, fmt.Sprintf("redis at %s: %v", url, err))
	}
	key := "nestbox:test:" + rand.Text()
	t.Cleanup(func() {
		if err := admin.Del(context.Background(), key).Err(); err != nil {
			t.Errorf("delete test key %s: %v", key, err)
		}
	})
	return Config{URL: url, Key: key}
}

func newTestStream(t *testing.T, cfg Config) *Stream {
	t.Helper()
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("new stream: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	eventstest.Run(t, func(t *testing.T) events.Stream {
		return newTestStream(t, testConfig(t))
	})
}

func event(id string) nestbox.CapsuleEvent {
	return nestbox.CapsuleEvent{CapsuleID: id, From: nestbox.StatusStarting, To: nestbox.StatusRunning, At: time.Unix(1_700_000_000, 0).UTC()}
}

func subscribe(t *testing.T, s *Stream) <-chan nestbox.CapsuleEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return ch
}

func publish(t *testing.T, s *Stream, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := s.Publish(context.Background(), event(id)); err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
	}
}

func next(t *testing.T, ch <-chan nestbox.CapsuleEvent) nestbox.CapsuleEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return ev
	case <-time.After(patience):
		t.Fatalf("no event within %s", patience)
	}
	panic("unreachable")
}

// TestOnlyLaterEvents checks, across two Streams on one key (two control
// planes), that a subscription gets what is published after Subscribe
// returns and nothing published before.
func TestOnlyLaterEvents(t *testing.T) {
	cfg := testConfig(t)
	pub, sub := newTestStream(t, cfg), newTestStream(t, cfg)
	publish(t, pub, "before-1", "before-2", "before-3")
	ch := subscribe(t, sub)
	publish(t, pub, "after-1", "after-2")
	for _, want := range []string{"after-1", "after-2"} {
		if got := next(t, ch); got.CapsuleID != want {
			t.Fatalf("got %+v, want %s", got, want)
		}
	}
}

// TestGapMarkerAfterTrim holds the reader while far more than MaxLen events
// are published, so that Redis trims some before they are read: the
// subscriber must get a gap marker before the survivors.
func TestGapMarkerAfterTrim(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxLen = 10 // approximate: Redis trims whole nodes of 100 entries
	const published = 1000
	var (
		mu      sync.Mutex
		holding = make(chan struct{}) // closed to let the reader go on
		hold    bool
	)
	s, err := open(context.Background(), cfg, func() {
		mu.Lock()
		h := hold
		mu.Unlock()
		if h {
			<-holding
		}
	})
	if err != nil {
		t.Fatalf("new stream: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	mu.Lock()
	hold = true
	mu.Unlock()
	ch := subscribe(t, s)
	for i := range published {
		publish(t, s, fmt.Sprint(i))
	}
	close(holding)

	var (
		gaps, kept int
		prev       = -1
	)
	for prev != published-1 {
		ev := next(t, ch)
		if ev.To == "" {
			gaps++
			continue
		}
		var i int
		if _, err := fmt.Sscan(ev.CapsuleID, &i); err != nil || i <= prev {
			t.Fatalf("got %+v after event %d: want a later event", ev, prev)
		}
		if i > prev+1 && gaps == 0 {
			t.Fatalf("events %d to %d were lost without a gap marker", prev+1, i-1)
		}
		prev = i
		kept++
	}
	if gaps == 0 || kept == published {
		t.Fatalf("got %d gap markers and %d of %d events, want a gap and fewer events", gaps, kept, published)
	}
}

func TestNewInvalidConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{URL: "http://127.0.0.1:6379"},
		{URL: "redis://127.0.0.1:6379/0", MaxLen: -1},
	} {
		if s, err := New(context.Background(), cfg); err == nil {
			s.Close()
			t.Errorf("got no error for %+v", cfg)
		}
	}
}

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want streamID
		ok   bool
	}{
		{"", streamID{}, true},
		{"0-0", streamID{}, true},
		{"1700000000000-3", streamID{1700000000000, 3}, true},
		{"12", streamID{}, false},
		{"a-1", streamID{}, false},
		{"1-b", streamID{}, false},
	} {
		got, err := parseID(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("got %v, %v for %q; want %v, ok=%v", got, err, tc.in, tc.want, tc.ok)
		}
	}
	if !(streamID{1, 9}).less(streamID{2, 0}) || (streamID{2, 0}).less(streamID{1, 9}) || (streamID{1, 1}).less(streamID{1, 1}) {
		t.Error("less orders IDs wrongly")
	}
}

// TestGapMarkerAfterReconnect kills the Stream's connections to Redis until
// the reader notices: once it reads again, the subscriber gets a gap marker
// (publishes may have failed meanwhile) and then later events as before.
func TestGapMarkerAfterReconnect(t *testing.T) {
	cfg := testConfig(t)
	name := "nestbox-test-" + rand.Text()
	cfg.URL += "?client_name=" + name
	s := newTestStream(t, cfg)
	ch := subscribe(t, s)
	publish(t, s, "before")
	if got := next(t, ch); got.CapsuleID != "before" {
		t.Fatalf("got %+v, want event before", got)
	}

	opts, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	opts.ClientName = ""
	admin := goredis.NewClient(opts)
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	// A killed idle connection is replaced silently; the reader's blocked
	// XREAD is the one that fails, so kill until it does.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for gap := false; !gap; {
		clients, err := admin.ClientList(ctx).Result()
		if err != nil {
			t.Fatalf("client list: %v", err)
		}
		for line := range strings.Lines(clients) {
			if !strings.Contains(line, " name="+name+" ") {
				continue
			}
			id, _, _ := strings.Cut(strings.TrimPrefix(line, "id="), " ")
			admin.Do(ctx, "CLIENT", "KILL", "ID", id) // it may be gone already
		}
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("channel closed")
			}
			if ev.To != "" {
				t.Fatalf("got %+v, want a gap marker", ev)
			}
			gap = true
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("no gap marker within %s of killing the connections", patience)
		}
	}
	publish(t, s, "after")
	if got := next(t, ch); got.CapsuleID != "after" {
		t.Fatalf("got %+v, want event after", got)
	}
}
