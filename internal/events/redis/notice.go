package redis

import (
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"nestbox.dev/internal/errdefs"
)

// channel is the Redis Pub/Sub channel of a topic's notices: under the
// stream key, so that fleets sharing a Redis with other keys stay apart.
func (s *Stream) channel(topic string) string { return s.key + ":notice:" + topic }

// Notify publishes a notice of topic (PUBLISH) to every Stream on the same
// key. It fails with errdefs.ErrUnavailable after Close or when Redis does
// not answer; the notice is then lost, and a watcher's cache is bounded by
// its own age.
func (s *Stream) Notify(ctx context.Context, topic string) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errdefs.Unavailable("notify %s: the event stream is closed", topic)
	}
	if err := s.client.Publish(ctx, s.channel(topic), "1").Err(); err != nil {
		return fmt.Errorf("notify %s: %w", topic, unavailable(err))
	}
	return nil
}

// Watch subscribes to topic's channel (SUBSCRIBE) and calls fn at every
// confirmed subscription (the first, and each after go-redis reconnected:
// notices published in between are lost) and at every notice, until ctx is
// done or the Stream is closed.
func (s *Stream) Watch(ctx context.Context, topic string, fn func()) {
	s.mu.Lock()
	closed, done := s.closed, s.done
	s.mu.Unlock()
	if closed {
		return
	}
	ps := s.client.Subscribe(ctx, s.channel(topic))
	defer ps.Close()
	// A subscription confirmation (*goredis.Subscription) and a notice
	// (*goredis.Message) both mean "drop what may be stale".
	msgs := ps.ChannelWithSubscriptions()
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			if _, isPong := m.(*goredis.Pong); !isPong {
				fn()
			}
		}
	}
}
