package memory

import (
	"context"

	"nestbox.dev/internal/errdefs"
)

// watcher is one Watch: a wake-up of capacity one, so that notices that
// arrive while fn runs coalesce into one more call.
type watcher chan struct{}

// Notify wakes every Watch of topic in this process (there is no other).
// After Close it fails with errdefs.ErrUnavailable.
func (s *Stream) Notify(_ context.Context, topic string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errdefs.Unavailable("notify %s: the event stream is closed", topic)
	}
	for w := range s.watchers[topic] {
		select {
		case w <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
	return nil
}

// Watch calls fn once registered and after every Notify of topic, until
// ctx is done or the Stream is closed.
func (s *Stream) Watch(ctx context.Context, topic string, fn func()) {
	w := make(watcher, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.watchers[topic] == nil {
		s.watchers[topic] = map[watcher]struct{}{}
	}
	s.watchers[topic][w] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.watchers[topic], w)
		s.mu.Unlock()
	}()
	fn()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-w:
			fn()
		}
	}
}
