package server

import (
	"context"
	"sync"
	"time"

	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/store"
)

// tokenRefresh is how often at most the token index re-reads the running
// capsules from the store.
const tokenRefresh = time.Second

// tokenIndex holds the envd access tokens of the running capsules, for
// routing header-less signed /files URLs: the URL names no capsule, only a
// signature made with one capsule's token, so finding it means checking
// the signature against each token. The index keeps that check in memory:
// the store is read at most once per tokenRefresh, however many requests
// come (a miss waits for the next refresh rather than causing one), and a
// capsule that ends is dropped at once by forget.
type tokenIndex struct {
	// running calls fn for each running capsule (lifecycle's EachRunning).
	running func(ctx context.Context, fn func(store.Capsule) bool) error
	now     func() time.Time
	every   time.Duration

	// mu guards the fields below; it is held during a rebuild, so that
	// concurrent requests share one.
	mu     sync.Mutex
	built  time.Time         // zero: never built
	tokens map[string]string // capsule ID → envd access token
}

func newTokenIndex(life *lifecycle.Service, now func() time.Time) *tokenIndex {
	return &tokenIndex{running: life.EachRunning, now: now, every: tokenRefresh}
}

// find returns the ID of a running capsule whose token satisfies match, or
// "". A miss on an index older than the refresh interval rebuilds it and
// looks again; a miss on a fresher one waits until it may be rebuilt (at
// most the interval), so that a capsule started a moment ago is found.
func (x *tokenIndex) find(ctx context.Context, match func(token string) bool) (string, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.built.IsZero() || x.now().Sub(x.built) >= x.every {
		if err := x.rebuild(ctx); err != nil {
			return "", err
		}
		return x.scan(match), nil
	}
	if id := x.scan(match); id != "" {
		return id, nil
	}
	wait := x.every - x.now().Sub(x.built)
	x.mu.Unlock()
	t := time.NewTimer(wait)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		x.mu.Lock()
		return "", ctx.Err()
	}
	x.mu.Lock()
	if x.now().Sub(x.built) >= x.every {
		if err := x.rebuild(ctx); err != nil {
			return "", err
		}
	}
	return x.scan(match), nil
}

// scan checks every token; the caller holds mu.
func (x *tokenIndex) scan(match func(token string) bool) string {
	for id, tok := range x.tokens {
		if tok != "" && match(tok) {
			return id
		}
	}
	return ""
}

// rebuild re-reads the running capsules; the caller holds mu.
func (x *tokenIndex) rebuild(ctx context.Context) error {
	m := map[string]string{}
	err := x.running(ctx, func(c store.Capsule) bool {
		if c.AccessToken != "" {
			m[c.ID] = c.AccessToken
		}
		return true
	})
	if err != nil {
		return err
	}
	x.tokens, x.built = m, x.now()
	return nil
}

// forget drops a capsule that ended.
func (x *tokenIndex) forget(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.tokens, id)
}
