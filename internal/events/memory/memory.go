// Package memory is the in-process implementation of events.Stream, for a
// control plane that runs on one machine. Events live only in memory: a
// subscriber sees what is published while it is subscribed, nothing earlier
// and nothing after a restart. Only the control plane imports it.
package memory

import (
	"context"
	"sync"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/events"
)

// DefaultBuffer is how many undelivered events each subscriber may fall
// behind before it loses the oldest ones.
const DefaultBuffer = 1024

// Stream is an in-memory events.Stream. The zero value is not usable: call
// New. It is safe for concurrent use.
type Stream struct {
	bufSize int
	// wg counts the subscribers' delivery goroutines, so that Close returns
	// only when none is left.
	wg sync.WaitGroup

	// mu orders publishers (every subscriber sees one publish order) and
	// guards the fields below it.
	mu     sync.Mutex
	closed bool
	subs   map[*subscriber]struct{}
	groups map[string]*group
	// watchers are the Watch calls of each topic.
	watchers map[string]map[watcher]struct{}
	// done is closed by Close: it ends every Consume.
	done chan struct{}
}

var _ events.Stream = (*Stream)(nil)

// New returns an open Stream whose subscribers each buffer DefaultBuffer
// events.
func New() *Stream {
	return newStream(DefaultBuffer)
}

func newStream(bufSize int) *Stream {
	return &Stream{bufSize: bufSize, subs: map[*subscriber]struct{}{}, groups: map[string]*group{}, watchers: map[string]map[watcher]struct{}{}, done: make(chan struct{})}
}

// Publish hands ev to every current subscriber's buffer and returns at once;
// it never waits for a subscriber to read. ctx is unused for that reason.
// After Close it fails with errdefs.ErrUnavailable.
func (s *Stream) Publish(_ context.Context, ev nestbox.CapsuleEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errdefs.Unavailable("publish event: the event stream is closed")
	}
	for sub := range s.subs {
		sub.Push(ev)
	}
	for _, g := range s.groups {
		g.push(ev)
	}
	return nil
}

// Subscribe returns a channel that carries every event published after it
// returns, until ctx is done or the Stream is closed; then the channel is
// closed and undelivered events are dropped. After Close it fails with
// errdefs.ErrUnavailable.
func (s *Stream) Subscribe(ctx context.Context) (<-chan nestbox.CapsuleEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errdefs.Unavailable("subscribe: the event stream is closed")
	}
	sub := newSubscriber(s.bufSize)
	s.subs[sub] = struct{}{}
	s.wg.Go(sub.Run)
	// Registered under mu, so that Close, which also holds mu, sees it.
	sub.stopWatch = context.AfterFunc(ctx, func() { s.unsubscribe(sub) })
	return sub.Out(), nil
}

func (s *Stream) unsubscribe(sub *subscriber) {
	s.mu.Lock()
	delete(s.subs, sub)
	s.mu.Unlock()
	sub.Stop()
}

// Backlog is how many events this Stream's subscriptions hold
// undelivered, together: what their readers have yet to take.
func (s *Stream) Backlog() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for sub := range s.subs {
		n += sub.Len()
	}
	return n
}

// Close ends every subscription (their channels are closed) and every
// Consume (without waiting for a handler that runs), and waits for
// the delivery goroutines to finish. Later Publish and Subscribe calls fail.
// Close is idempotent.
func (s *Stream) Close() error {
	s.mu.Lock()
	if !s.closed {
		close(s.done)
	}
	s.closed = true
	subs := s.subs
	s.subs = map[*subscriber]struct{}{}
	s.mu.Unlock()
	for sub := range subs {
		sub.stopWatch()
		sub.Stop()
	}
	s.wg.Wait()
	return nil
}
