package server

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"nestbox.dev/internal/store"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestKeyCacheAge(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c := newKeyCache(3*time.Second, 10, clock.now)
	_, ok, epoch := c.get("h")
	if ok {
		t.Fatal("an empty cache had a key")
	}
	c.put("h", store.APIKey{ID: "key_1"}, epoch)
	clock.advance(2 * time.Second)
	if k, ok, _ := c.get("h"); !ok || k.ID != "key_1" {
		t.Fatalf("after 2 s of 3: %+v, %v; want key_1 cached", k, ok)
	}
	clock.advance(time.Second)
	if _, ok, _ := c.get("h"); ok {
		t.Fatal("a key older than the cache's lifetime was still trusted")
	}
	if n := c.len(); n != 0 {
		t.Fatalf("%d keys kept after the only one expired, want 0", n)
	}
}

func TestKeyCacheSize(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c := newKeyCache(time.Hour, 4, clock.now)
	for i := range 10 {
		h := fmt.Sprint("h", i)
		_, _, epoch := c.get(h)
		c.put(h, store.APIKey{ID: h}, epoch)
		if n := c.len(); n > 4 {
			t.Fatalf("%d keys after %d puts, want at most the size 4", n, i+1)
		}
	}
	// The newest is always kept.
	if _, ok, _ := c.get("h9"); !ok {
		t.Fatal("the key put last was dropped")
	}
}

// TestKeyCacheForget: forget drops every key, and a lookup that began
// before it does not put the key it found.
func TestKeyCacheForget(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c := newKeyCache(time.Hour, 10, clock.now)
	_, _, epoch := c.get("a")
	c.put("a", store.APIKey{ID: "a"}, epoch)
	_, _, before := c.get("b") // a lookup of b starts
	c.forget()                 // a revocation lands meanwhile
	c.put("b", store.APIKey{ID: "b"}, before)
	if _, ok, _ := c.get("a"); ok {
		t.Fatal("a key cached before forget was still trusted")
	}
	if _, ok, _ := c.get("b"); ok {
		t.Fatal("a key found by a lookup that began before forget was cached")
	}
	_, _, after := c.get("b")
	c.put("b", store.APIKey{ID: "b"}, after)
	if _, ok, _ := c.get("b"); !ok {
		t.Fatal("a key found after forget was not cached")
	}
}

func TestKeyCacheOff(t *testing.T) {
	c := newKeyCache(-1, 0, time.Now)
	c.put("h", store.APIKey{ID: "k"}, 0)
	if _, ok, _ := c.get("h"); ok {
		t.Fatal("a cache turned off kept a key")
	}
	c.forget()
	c.touched("h", time.Now())
}
