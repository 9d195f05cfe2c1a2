package server

import (
	"context"
	"sync"
	"time"

	"nestbox.dev/internal/store"
)

// Key cache defaults (Config.KeyCacheTTL, Config.KeyCacheSize).
const (
	defaultKeyCacheTTL  = 3 * time.Second
	defaultKeyCacheSize = 10_000
)

// KeysRevokedTopic is the topic of the notices (events.Stream.Notify) that
// tell every control plane to drop its cached API keys: one revoked a key,
// or a user's keys.
const KeysRevokedTopic = "api-keys-revoked"

// notifier carries a notice to every control plane (events.Stream).
type notifier interface {
	Notify(ctx context.Context, topic string) error
}

// keyCache holds the API keys requests presented, by the hash of their
// secret, for at most ttl each, so that a request costs the store no key
// lookup. A revocation must not outlive it: the control plane that
// revokes forgets every key at once and tells the others, which forget
// theirs (ForgetKeys); a notice that is lost (Redis down) leaves a revoked
// key working there for at most ttl. Only found keys are kept: an unknown
// key asks the store every time. Its methods are safe for concurrent use.
type keyCache struct {
	ttl  time.Duration
	size int
	now  func() time.Time

	// mu guards the fields below it.
	mu      sync.Mutex
	entries map[string]cachedKey
	// epoch counts forgets: a lookup that began before one does not fill
	// the cache, since the key it found may be the one revoked.
	epoch uint64
}

type cachedKey struct {
	key     store.APIKey
	expires time.Time
}

// newKeyCache returns a cache of size keys kept ttl each; ttl < 0 means
// no cache (nil, whose methods do nothing).
func newKeyCache(ttl time.Duration, size int, now func() time.Time) *keyCache {
	if ttl < 0 {
		return nil
	}
	if ttl == 0 {
		ttl = defaultKeyCacheTTL
	}
	if size <= 0 {
		size = defaultKeyCacheSize
	}
	return &keyCache{ttl: ttl, size: size, now: now, entries: map[string]cachedKey{}}
}

// get returns the key of hash if it is cached and fresh, and the epoch a
// lookup of the store must pass to put.
func (c *keyCache) get(hash string) (store.APIKey, bool, uint64) {
	if c == nil {
		return store.APIKey{}, false, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if ok && c.now().Before(e.expires) {
		return e.key, true, c.epoch
	}
	if ok {
		delete(c.entries, hash)
	}
	return store.APIKey{}, false, c.epoch
}

// put keeps k, found in the store by a lookup that began at epoch, unless
// the cache was told to forget since. A full cache drops its expired
// keys, and if none expired, one key at random.
func (c *keyCache) put(hash string, k store.APIKey, epoch uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch {
		return
	}
	now := c.now()
	if _, ok := c.entries[hash]; !ok && len(c.entries) >= c.size {
		for h, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, h)
			}
		}
		for h := range c.entries {
			if len(c.entries) < c.size {
				break
			}
			delete(c.entries, h)
		}
	}
	c.entries[hash] = cachedKey{key: k, expires: now.Add(c.ttl)}
}

// touched records a key's new last use in its cached copy, if any, so
// that it is not written again on every request.
func (c *keyCache) touched(hash string, at time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[hash]; ok {
		e.key.LastUsedAt = &at
		c.entries[hash] = e
	}
}

// forget drops every key.
func (c *keyCache) forget() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	clear(c.entries)
}

// len is how many keys the cache holds, expired ones included.
func (c *keyCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// ForgetKeys drops every cached API key: another control plane revoked
// one (a notice of KeysRevokedTopic), or notices may have been missed.
func (s *Server) ForgetKeys() { s.keys.forget() }

// keysRevoked forgets this control plane's cached keys after a revocation
// and tells the others to forget theirs. A notice that cannot be sent is
// logged: the others' copies expire within the cache's lifetime anyway.
func (s *Server) keysRevoked(ctx context.Context) {
	s.keys.forget()
	if s.cfg.Notices == nil {
		return
	}
	if err := s.cfg.Notices.Notify(context.WithoutCancel(ctx), KeysRevokedTopic); err != nil {
		s.log.Warn("tell the other control planes that API keys were revoked", "err", err)
	}
}
