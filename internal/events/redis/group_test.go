package redis

import (
	"context"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"nestbox.dev"
	"nestbox.dev/internal/events"
)

// admin returns a client of cfg's Redis, for looking at the group as Redis
// holds it.
func admin(t *testing.T, cfg Config) *goredis.Client {
	t.Helper()
	opts, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// counter records which consumer handled which capsule's event.
type counter struct {
	mu sync.Mutex
	by map[string][]string // capsule ID -> consumers that handled it
}

func (c *counter) handler(consumer string, fail func(ctx context.Context) error) func(context.Context, nestbox.CapsuleEvent) error {
	return func(ctx context.Context, ev nestbox.CapsuleEvent) error {
		if fail != nil {
			if err := fail(ctx); err != nil {
				return err
			}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.by[ev.CapsuleID] = append(c.by[ev.CapsuleID], consumer)
		return nil
	}
}

func (c *counter) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.by)
}

func consume(t *testing.T, s *Stream, cfg events.GroupConfig, fn func(context.Context, nestbox.CapsuleEvent) error) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Consume(ctx, cfg, fn); err != nil {
			t.Errorf("consume: %v", err)
		}
	}()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(patience):
			t.Errorf("consume did not return within %s", patience)
		}
	}
	t.Cleanup(stop)
	return stop
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", patience, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pendingCount(t *testing.T, c *goredis.Client, key, group string) int64 {
	t.Helper()
	p, err := c.XPending(context.Background(), key, group).Result()
	if err != nil {
		t.Fatalf("XPENDING %s %s: %v", key, group, err)
	}
	return p.Count
}

// TestGroupAcrossStreams: consumers in two Streams on one key (two control
// planes) share the group's events, each once, while every broadcast
// subscriber of both still sees all of them; once handled, nothing is
// pending in Redis.
func TestGroupAcrossStreams(t *testing.T) {
	const n = 200
	cfg := testConfig(t)
	one, two, pub := newTestStream(t, cfg), newTestStream(t, cfg), newTestStream(t, cfg)
	subs := []<-chan nestbox.CapsuleEvent{subscribe(t, one), subscribe(t, two)}
	c := &counter{by: map[string][]string{}}
	gcfg := events.GroupConfig{Group: "fallback", ClaimIdle: 10 * patience}
	gcfg.Consumer = "one"
	stopOne := consume(t, one, gcfg, c.handler("one", nil))
	gcfg.Consumer = "two"
	stopTwo := consume(t, two, gcfg, c.handler("two", nil))
	// The group exists once a consumer made it: publish until one handled
	// a warmup event.
	waitUntil(t, "the group", func() bool { publish(t, pub, "warmup"); return c.len() > 0 })
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "e-" + string(rune('A'+i/26)) + string(rune('a'+i%26))
	}
	publish(t, pub, ids...)
	waitUntil(t, "all events handled", func() bool { return c.len() == n+1 })
	per := map[string]int{}
	for _, id := range ids {
		got := c.by[id]
		if len(got) != 1 {
			t.Fatalf("event of %s handled by %v, want one consumer", id, got)
		}
		per[got[0]]++
	}
	t.Logf("events per consumer: %v", per)
	// Broadcast subscribers are not a group's members: each sees every
	// event.
	for _, ch := range subs {
		seen := map[string]bool{}
		for len(seen) < n {
			if ev := next(t, ch); ev.CapsuleID != "warmup" {
				seen[ev.CapsuleID] = true
			}
		}
	}
	a := admin(t, cfg)
	waitUntil(t, "no entry pending", func() bool { return pendingCount(t, a, cfg.Key, "fallback") == 0 })
	// Consumers that end with nothing pending leave the group.
	stopOne()
	stopTwo()
	members, err := a.XInfoConsumers(context.Background(), cfg.Key, "fallback").Result()
	if err != nil || len(members) != 0 {
		t.Fatalf("members after both consumers ended: %+v, %v; want none", members, err)
	}
}

// TestGroupClaimFromDeadStream: a Stream whose consumer read entries and
// died before acknowledging them (its process went away: Close) leaves
// them pending in Redis on its consumer; another Stream's consumer claims
// and handles them.
func TestGroupClaimFromDeadStream(t *testing.T) {
	const n = 5
	cfg := testConfig(t)
	dying, live, pub := newTestStream(t, cfg), newTestStream(t, cfg), newTestStream(t, cfg)
	c := &counter{by: map[string][]string{}}
	took := make(chan struct{}, n)
	gcfg := events.GroupConfig{Group: "fallback", Consumer: "dying", ClaimIdle: 300 * time.Millisecond}
	consume(t, dying, gcfg, c.handler("dying", func(ctx context.Context) error {
		took <- struct{}{}
		<-ctx.Done() // never finishes: the process dies first
		return ctx.Err()
	}))
	// The dying consumer never handles anything, so the group's existence
	// shows in Redis instead.
	a := admin(t, cfg)
	waitUntil(t, "the group", func() bool {
		groups, err := a.XInfoGroups(context.Background(), cfg.Key).Result()
		return err == nil && len(groups) == 1
	})
	publish(t, pub, "d-1", "d-2", "d-3", "d-4", "d-5")
	select {
	case <-took:
	case <-time.After(patience):
		t.Fatal("the dying consumer took no event")
	}
	dying.Close()
	if p := pendingCount(t, a, cfg.Key, "fallback"); p == 0 {
		t.Fatal("nothing pending after the consumer took an event and died")
	}
	gcfg.Consumer = "live"
	consume(t, live, gcfg, c.handler("live", nil))
	waitUntil(t, "the dead consumer's events handled", func() bool { return c.len() == n })
	for id, by := range c.by {
		if len(by) != 1 || by[0] != "live" {
			t.Fatalf("event of %s handled by %v, want live once", id, by)
		}
	}
	waitUntil(t, "no entry pending", func() bool { return pendingCount(t, a, cfg.Key, "fallback") == 0 })
}
