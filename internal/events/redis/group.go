package redis

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/events"
)

// ackTimeout bounds an XACK, which runs after the consumer's context may be
// done: a handled event is acknowledged even by a consumer on its way out.
const ackTimeout = 5 * time.Second

// Consume joins the Redis consumer group cfg.Group of the stream key as
// cfg.Consumer and hands its events to handle, as events.Stream documents:
// XREADGROUP reads new entries, XACK acknowledges a handled one, and
// XAUTOCLAIM takes over entries pending for cfg.ClaimIdle on any member
// (every ClaimIdle/2, and at once on joining). The group is created at the
// stream's end by the first member (XGROUP CREATE ... $ MKSTREAM), and
// again after Redis lost it (a restart without persistence). It returns nil
// when ctx is done or the Stream is closed.
func (s *Stream) Consume(ctx context.Context, cfg events.GroupConfig, handle func(context.Context, nestbox.CapsuleEvent) error) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errdefs.Unavailable("consume: the event stream is closed")
	}
	done := s.done
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	// A client of its own, closed when ctx is done: a blocked XREADGROUP
	// does not watch its context, closing its connection ends it.
	opts := *s.opts
	opts.PoolSize = 2
	client := goredis.NewClient(&opts)
	defer client.Close()
	context.AfterFunc(ctx, func() { client.Close() })
	c := &groupConsumer{s: s, client: client, cfg: cfg, idle: cfg.Idle(), handle: handle,
		log: s.log.With("group", cfg.Group, "consumer", cfg.Consumer)}
	c.run(ctx)
	c.leave(ctx)
	return nil
}

// forgetAfter is how long a member of a group may be silent, with nothing
// pending, before any member removes it: every process that ever joined
// (each under a name of its own) would otherwise stay listed for ever.
const forgetAfter = time.Hour

// leave removes this consumer from the group if nothing is pending on it:
// what is pending stays, for another member to claim.
func (c *groupConsumer) leave(ctx context.Context) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	pending, err := c.s.client.XPendingExt(lctx, &goredis.XPendingExtArgs{
		Stream: c.s.key, Group: c.cfg.Group, Consumer: c.cfg.Consumer, Start: "-", End: "+", Count: 1,
	}).Result()
	if err != nil || len(pending) > 0 {
		return // Redis is away or the Stream closed: forgetAfter covers it
	}
	c.s.client.XGroupDelConsumer(lctx, c.s.key, c.cfg.Group, c.cfg.Consumer)
}

// forgetSilent removes the members that have been silent for forgetAfter
// with nothing pending (processes long gone).
func (c *groupConsumer) forgetSilent(ctx context.Context) error {
	members, err := c.client.XInfoConsumers(ctx, c.s.key, c.cfg.Group).Result()
	if err != nil {
		return fmt.Errorf("list the members of group %s of %s: %w", c.cfg.Group, c.s.key, err)
	}
	for _, m := range members {
		if m.Name != c.cfg.Consumer && m.Pending == 0 && m.Idle >= forgetAfter {
			if err := c.client.XGroupDelConsumer(ctx, c.s.key, c.cfg.Group, m.Name).Err(); err != nil {
				return fmt.Errorf("remove member %s of group %s: %w", m.Name, c.cfg.Group, err)
			}
		}
	}
	return nil
}

// groupConsumer is one Consume call.
type groupConsumer struct {
	s      *Stream
	client *goredis.Client
	cfg    events.GroupConfig
	idle   time.Duration
	handle func(context.Context, nestbox.CapsuleEvent) error
	log    *slog.Logger
}

// run reads, claims and handles until ctx is done. Redis failures are
// logged and retried with backoff.
func (c *groupConsumer) run(ctx context.Context) {
	var (
		backoff   time.Duration
		failing   bool
		needGroup = true
		lastClaim time.Time // zero: claim at once what dead members left
	)
	// The read blocks at most half a claim interval, so that claims run
	// on time while the stream is quiet.
	block := max(min(blockFor, c.idle/2), 10*time.Millisecond)
	for ctx.Err() == nil {
		err := c.round(ctx, &needGroup, &lastClaim, block)
		if err == nil {
			if failing {
				c.log.Info("consuming the event stream again")
				failing, backoff = false, 0
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if goredis.HasErrorPrefix(err, "NOGROUP") {
			needGroup = true // Redis lost the group (or the key)
		}
		failing = true
		backoff = min(max(2*backoff, firstBackoff), maxBackoff)
		c.log.Warn("consume the event stream; retrying", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
	}
}

// round makes the group if needed, claims idle entries when a claim is
// due, then reads and handles new entries, waiting up to block for some.
func (c *groupConsumer) round(ctx context.Context, needGroup *bool, lastClaim *time.Time, block time.Duration) error {
	key := c.s.key
	if *needGroup {
		err := c.client.XGroupCreateMkStream(ctx, key, c.cfg.Group, "$").Err()
		if err != nil && !goredis.HasErrorPrefix(err, "BUSYGROUP") {
			return fmt.Errorf("create consumer group %s of %s: %w", c.cfg.Group, key, unavailable(err))
		}
		*needGroup = false
	}
	if time.Since(*lastClaim) >= c.idle/2 {
		if err := c.claim(ctx); err != nil {
			return err
		}
		if err := c.forgetSilent(ctx); err != nil {
			return err
		}
		*lastClaim = time.Now()
	}
	streams, err := c.client.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: c.cfg.Group, Consumer: c.cfg.Consumer, Streams: []string{key, ">"}, Count: batch, Block: block,
	}).Result()
	if err == goredis.Nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read group %s of %s: %w", c.cfg.Group, key, err)
	}
	for _, st := range streams {
		c.handleAll(ctx, st.Messages)
	}
	return nil
}

// claim takes over every entry pending on any member for the claim idle
// time, and handles it.
func (c *groupConsumer) claim(ctx context.Context) error {
	start := "0-0"
	for {
		msgs, next, err := c.client.XAutoClaim(ctx, &goredis.XAutoClaimArgs{
			Stream: c.s.key, Group: c.cfg.Group, Consumer: c.cfg.Consumer, MinIdle: c.idle, Start: start, Count: batch,
		}).Result()
		if err != nil {
			return fmt.Errorf("claim idle entries of group %s of %s: %w", c.cfg.Group, c.s.key, err)
		}
		c.handleAll(ctx, msgs)
		if next == "0-0" || next == "" || ctx.Err() != nil {
			return nil
		}
		start = next
	}
}

// handleAll hands each entry to the handler and acknowledges those it
// handled. An entry that is no event (a foreign writer, or one Redis
// deleted while it was pending) is acknowledged unhandled: nobody can
// handle it. Once ctx is done the rest stay pending, for another member.
func (c *groupConsumer) handleAll(ctx context.Context, msgs []goredis.XMessage) {
	for _, msg := range msgs {
		if ctx.Err() != nil {
			return
		}
		e, _ := c.s.decode(msg)
		if e.ev.To != "" && c.handle(ctx, e.ev) != nil {
			continue // pending: claimed again after the idle time
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
		err := c.s.client.XAck(actx, c.s.key, c.cfg.Group, msg.ID).Err()
		cancel()
		if err != nil {
			// Handled but still pending: it is handled again after the
			// idle time (handlers are idempotent).
			c.log.Warn("acknowledge a stream entry", "id", msg.ID, "err", err)
		}
	}
}
