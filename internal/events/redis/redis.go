// Package redis is the Redis Streams implementation of events.Stream, for a
// control plane that runs on several machines: every instance publishes to
// and reads from one stream key, so a subscriber on one machine sees the
// events published on all of them. Only the control plane imports it.
//
// Each event is one stream entry (field "event", the JSON of the event),
// added with XADD MAXLEN ~ so that the key stays bounded. A Stream runs one
// reader goroutine that follows the key with XREAD and fans entries out to
// its subscribers; a subscriber sees the entries added after its Subscribe
// returned, and a gap marker (an event with To == "") whenever it may have
// missed some: its buffer overflowed, Redis trimmed entries before they were
// read, or the connection to Redis was lost for a while.
//
// Consume is the other way to read the key: through a Redis consumer group
// (group.go), which hands each entry to one member across all processes,
// instead of every entry to every subscriber.
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/events"
)

// Defaults of Config.
const (
	DefaultKey    = "nestbox:capsule-events"
	DefaultMaxLen = 100_000
	// DefaultBuffer is how many undelivered events each subscriber may fall
	// behind before it loses the oldest ones.
	DefaultBuffer = 1024
)

// field is the name of the entry field that holds an event's JSON.
const field = "event"

// Config configures a Stream. The zero value of each field is its default.
type Config struct {
	// URL locates Redis, as redis://[:password@]host:port/db (rediss:// for
	// TLS). Required.
	URL string
	// Key is the stream key; "" means DefaultKey.
	Key string
	// MaxLen is the approximate number of entries Redis keeps; 0 means
	// DefaultMaxLen.
	MaxLen int64
	// Logger receives the reader's connection problems; nil discards them.
	Logger *slog.Logger
}

// Stream is an events.Stream over a Redis stream key. The zero value is not
// usable: call New. It is safe for concurrent use.
type Stream struct {
	client *goredis.Client
	opts   *goredis.Options // for the clients of Consume
	key    string
	maxLen int64
	log    *slog.Logger
	// beforeRead, when set (by tests), runs before each read of the reader.
	beforeRead func()

	stopReader context.CancelFunc
	// wg counts the reader and the subscribers' delivery goroutines, so that
	// Close returns only when none is left.
	wg sync.WaitGroup

	// mu guards the fields below it; the reader holds it while it fans an
	// entry out, so that a subscription starts between two entries.
	mu     sync.Mutex
	closed bool
	subs   map[*subscriber]struct{}
	// done is closed by Close: it ends every Consume.
	done chan struct{}
}

var _ events.Stream = (*Stream)(nil)

// New connects to Redis and starts following cfg.Key. It fails with
// errdefs.ErrInvalid for a bad config and errdefs.ErrUnavailable when Redis
// does not answer.
func New(ctx context.Context, cfg Config) (*Stream, error) {
	return open(ctx, cfg, nil)
}

// open is New with a hook that runs before each read of the reader.
func open(ctx context.Context, cfg Config, beforeRead func()) (*Stream, error) {
	if cfg.URL == "" {
		return nil, errdefs.Invalid("open redis event stream: no URL")
	}
	opts, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("open redis event stream: %w", errdefs.Invalid("parse URL: %v", err))
	}
	if cfg.MaxLen < 0 {
		return nil, errdefs.Invalid("open redis event stream: negative MaxLen %d", cfg.MaxLen)
	}
	s := &Stream{
		client:     goredis.NewClient(opts),
		opts:       opts,
		done:       make(chan struct{}),
		key:        cmpOr(cfg.Key, DefaultKey),
		maxLen:     cfg.MaxLen,
		log:        cfg.Logger,
		beforeRead: beforeRead,
		subs:       map[*subscriber]struct{}{},
	}
	if s.maxLen == 0 {
		s.maxLen = DefaultMaxLen
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("stream", s.key)
	start, err := s.end(ctx)
	if err != nil {
		s.client.Close()
		return nil, fmt.Errorf("open redis event stream: %w", err)
	}
	// The reader runs under the Stream's own context, not the caller's: it
	// lives until Close.
	readerCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopReader = stop
	s.wg.Go(func() { s.read(readerCtx, start) })
	return s, nil
}

// Publish appends ev to the stream key. It waits for Redis, never for
// subscribers. After Close, or when Redis does not answer, it fails with
// errdefs.ErrUnavailable.
func (s *Stream) Publish(ctx context.Context, ev nestbox.CapsuleEvent) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errdefs.Unavailable("publish event: the event stream is closed")
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("publish event of capsule %s: %w", ev.CapsuleID, err)
	}
	err = s.client.XAdd(ctx, &goredis.XAddArgs{
		Stream: s.key,
		MaxLen: s.maxLen,
		Approx: true,
		Values: []any{field, data},
	}).Err()
	if err != nil {
		return fmt.Errorf("publish event of capsule %s: %w", ev.CapsuleID, unavailable(err))
	}
	return nil
}

// Subscribe returns a channel that carries every event published (by any
// Stream on the same key) after it returns, until ctx is done or the Stream
// is closed; then the channel is closed and undelivered events are dropped.
// After Close, or when Redis does not answer, it fails with
// errdefs.ErrUnavailable.
func (s *Stream) Subscribe(ctx context.Context) (<-chan nestbox.CapsuleEvent, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errdefs.Unavailable("subscribe: the event stream is closed")
	}
	// Registered before the stream's end is known, so that the reader
	// offers it every entry it fans out from now on: those that turn out
	// to be older than the end are dropped by begin.
	sub := newSubscriber(DefaultBuffer)
	s.subs[sub] = struct{}{}
	s.wg.Go(sub.Run)
	// Registered under mu, so that Close, which also holds mu, sees it.
	sub.stopWatch = context.AfterFunc(ctx, func() { s.unsubscribe(sub) })
	s.mu.Unlock()

	start, err := s.lastID(ctx)
	if err != nil {
		sub.stopWatch()
		s.unsubscribe(sub)
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	sub.begin(start)
	return sub.Out(), nil
}

func (s *Stream) unsubscribe(sub *subscriber) {
	s.mu.Lock()
	delete(s.subs, sub)
	s.mu.Unlock()
	sub.Stop()
}

// Backlog is how many events this process's subscriptions hold
// undelivered, together: entries the reader fetched that their readers
// have yet to take (entries Redis holds that the reader has not fetched
// yet are not counted).
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
// Consume (without waiting for a handler that runs), stops the
// reader, waits for all goroutines and closes the Redis client. Later
// Publish and Subscribe calls fail. Close is idempotent.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	subs := s.subs
	s.subs = map[*subscriber]struct{}{}
	s.mu.Unlock()
	for sub := range subs {
		sub.stopWatch()
		sub.Stop()
	}
	s.stopReader()
	// Closing the client also ends a read blocked in XREAD, which does not
	// watch its context.
	err := s.client.Close()
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("close redis event stream: %w", err)
	}
	return nil
}

// end returns a cursor at the stream's newest entry.
func (s *Stream) end(ctx context.Context) (cursor, error) {
	var info *goredis.XInfoStreamCmd
	exists, err := s.inspect(ctx, func(_ goredis.Pipeliner, cmd *goredis.XInfoStreamCmd) { info = cmd })
	if err != nil || !exists {
		return cursor{}, err
	}
	st := info.Val()
	pos, err := parseID(st.LastGeneratedID)
	if err != nil {
		return cursor{}, fmt.Errorf("inspect %s: %w", s.key, err)
	}
	return cursor{pos: pos, added: st.EntriesAdded}, nil
}

// lastID returns the ID of the stream's newest entry: a subscription that
// starts there sees exactly the entries added later. An empty or missing
// key gives the zero ID.
func (s *Stream) lastID(ctx context.Context) (streamID, error) {
	msgs, err := s.client.XRevRangeN(ctx, s.key, "+", "-", 1).Result()
	if err != nil {
		return streamID{}, fmt.Errorf("read the end of %s: %w", s.key, unavailable(err))
	}
	if len(msgs) == 0 {
		return streamID{}, nil
	}
	return parseID(msgs[0].ID)
}

// unavailableError is a Redis failure of kind errdefs.ErrUnavailable that
// keeps the client's error for errors.Is and errors.As.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string   { return e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{errdefs.ErrUnavailable, e.err} }

func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &unavailableError{err: err}
}
