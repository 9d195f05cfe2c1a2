package server

import (
	"net/netip"
	"testing"
	"time"
)

// TestIPLimiter: each address has its own bucket, an IPv6 /64 shares one,
// and a flood of addresses does not grow the bucket map without bound.
func TestIPLimiter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newIPLimiter(1, 2, func() time.Time { return now })
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i, want := range []bool{true, true, false} {
		if got := l.allow(a); got != want {
			t.Errorf("request %d of %s: allowed %v, want %v", i, a, got, want)
		}
	}
	if !l.allow(b) {
		t.Errorf("%s was limited by %s's bucket", b, a)
	}
	if !l.allow(netip.MustParseAddr("::ffff:192.0.2.2")) || l.allow(netip.MustParseAddr("::ffff:192.0.2.2")) {
		t.Error("an IPv4-mapped address does not share its IPv4 address's bucket")
	}
	v6a, v6b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::ffff:1")
	l.allow(v6a)
	l.allow(v6a)
	if l.allow(v6b) {
		t.Error("two addresses of one IPv6 /64 have separate buckets")
	}

	now = now.Add(time.Hour)
	for i := range limiterMax + 10 {
		l.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	l.mu.Lock()
	n := len(l.buckets)
	l.mu.Unlock()
	if n > limiterMax {
		t.Errorf("%d buckets after a flood of addresses, want at most %d", n, limiterMax)
	}
	// Idle buckets go at the next sweep.
	now = now.Add(limiterIdle + limiterSweepEvery)
	for i := range limiterSweepAt {
		l.allow(netip.AddrFrom4([4]byte{11, 0, byte(i >> 8), byte(i)}))
	}
	l.mu.Lock()
	n = len(l.buckets)
	l.mu.Unlock()
	if n > limiterSweepAt+1 {
		t.Errorf("%d buckets after the others went idle, want at most %d", n, limiterSweepAt+1)
	}
	if newIPLimiter(-1, 0, time.Now) != nil || !(*ipLimiter)(nil).allow(a) {
		t.Error("a negative rate does not disable the limit")
	}
}

// TestIPLimiterOverflow: a flood of new addresses while the bucket map is
// full and none is idle shares one overflow bucket; it does not reset the
// exhausted bucket of an address already seen.
func TestIPLimiterOverflow(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newIPLimiter(1, 2, func() time.Time { return now })
	a := netip.MustParseAddr("192.0.2.1")
	l.allow(a)
	l.allow(a)
	if l.allow(a) {
		t.Fatalf("%s allowed a third request of a burst of 2", a)
	}
	allowed := 0
	for i := range limiterMax + 10 {
		// A /64 each, all within 2001:db8::/32.
		addr := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 16), byte(i >> 8), byte(i), 15: 1})
		if l.allow(addr) && i >= limiterMax {
			allowed++
		}
	}
	if l.allow(a) {
		t.Errorf("%s allowed after a flood of new addresses: its exhausted bucket was reset", a)
	}
	if allowed > 2 {
		t.Errorf("%d requests of new addresses past the limit allowed, want at most the overflow bucket's burst of 2", allowed)
	}
	l.mu.Lock()
	n := len(l.buckets)
	l.mu.Unlock()
	if n > limiterMax {
		t.Errorf("%d buckets after a flood of addresses, want at most %d", n, limiterMax)
	}
}

// TestByteBudget: takes never exceed what is free, and gives restore it.
func TestByteBudget(t *testing.T) {
	b := newByteBudget(100)
	if got := b.take(60); got != 60 {
		t.Fatalf("take(60) of 100 = %d", got)
	}
	if got := b.take(60); got != 40 {
		t.Fatalf("take(60) of the 40 left = %d", got)
	}
	if got := b.take(1); got != 0 {
		t.Fatalf("take(1) of none = %d", got)
	}
	b.give(60)
	b.give(40)
	if got := b.take(1000); got != 100 {
		t.Fatalf("take(1000) after giving all back = %d, want 100", got)
	}
}
