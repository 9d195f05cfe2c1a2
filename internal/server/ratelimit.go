package server

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the per-address limit on sandbox traffic routed without an
// API key.
const (
	defaultTrafficRate  = 200 // requests per second
	defaultTrafficBurst = 400
	// limiterIdle is how long an address's bucket is kept unused; it is
	// full again by then.
	limiterIdle = time.Minute
	// limiterSweepAt is the number of buckets past which idle ones are
	// dropped, at most once per limiterSweepEvery (a sweep walks them all,
	// so it must not run per new address); limiterMax the number past which
	// new addresses share one overflow bucket (a flood of addresses must
	// not grow memory without bound, nor reset the buckets of addresses
	// already seen: one IPv6 /48 alone holds 65,536 /64s).
	limiterSweepAt    = 4096
	limiterSweepEvery = 10 * time.Second
	limiterMax        = 1 << 16
)

// ipLimiter is a token bucket per client address (per /64 for IPv6, which
// hands each client that many). It is safe for concurrent use; a nil
// *ipLimiter allows everything.
type ipLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	// mu guards buckets, overflow and swept.
	mu       sync.Mutex
	buckets  map[netip.Prefix]*bucket
	overflow *bucket   // shared by new addresses while buckets is full
	swept    time.Time // the last sweep
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// newIPLimiter returns a limiter of perSecond requests with burst; a
// negative perSecond means no limit (nil), zero the defaults.
func newIPLimiter(perSecond float64, burst int, now func() time.Time) *ipLimiter {
	if perSecond < 0 {
		return nil
	}
	if perSecond == 0 {
		perSecond = defaultTrafficRate
	}
	if burst <= 0 {
		burst = defaultTrafficBurst
	}
	return &ipLimiter{
		limit:    rate.Limit(perSecond),
		burst:    burst,
		now:      now,
		buckets:  map[netip.Prefix]*bucket{},
		overflow: &bucket{lim: rate.NewLimiter(rate.Limit(perSecond), burst)},
	}
}

// allow takes one token of addr's bucket. An address that cannot be read
// shares one bucket with every other such, and so do the new addresses
// that arrive while limiterMax buckets are in use and none is idle.
func (l *ipLimiter) allow(addr netip.Addr) bool {
	if l == nil {
		return true
	}
	key := netip.Prefix{}
	if addr.IsValid() {
		bits := 32
		if addr = addr.Unmap(); addr.Is6() {
			bits = 64
		}
		key, _ = addr.Prefix(bits)
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= limiterSweepAt && now.Sub(l.swept) >= limiterSweepEvery {
			l.sweep(now)
		}
		if len(l.buckets) >= limiterMax {
			b = l.overflow
		} else {
			b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
			l.buckets[key] = b
		}
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

// sweep drops the buckets unused for limiterIdle; the caller holds mu.
func (l *ipLimiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.seen) > limiterIdle {
			delete(l.buckets, k)
		}
	}
	l.swept = now
}

// clientIP is the address of the peer that sent r: the connection's,
// never a header a client can set. Behind a reverse proxy every client
// shares the proxy's address and bucket.
func clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a
}
