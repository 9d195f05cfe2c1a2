package memory

import (
	"context"
	"sync"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/events"
)

// groupLimit bounds the events a group holds that no member has taken yet
// (a group whose members are all gone would otherwise grow for ever): past
// it the oldest are dropped, as Redis trims its stream.
const groupLimit = 10 * DefaultBuffer

// group is one consumer group of a Stream: the events published since its
// first member joined that no member has acknowledged. Its methods are safe
// for concurrent use.
type group struct {
	// mu guards the fields below it.
	mu      sync.Mutex
	ready   []nestbox.CapsuleEvent // published, not yet handed out; oldest first
	pending map[uint64]*pendingEvent
	next    uint64 // ID of the next event handed out; IDs only grow
	// changed is closed, and replaced, whenever what take would answer
	// may have changed: an event was published or handed out.
	changed chan struct{}
}

// pendingEvent is an event handed to a consumer and not acknowledged.
type pendingEvent struct {
	ev       nestbox.CapsuleEvent
	consumer string
	since    time.Time // when it was handed out last
}

func newGroup() *group {
	return &group{pending: map[uint64]*pendingEvent{}, changed: make(chan struct{})}
}

// push adds a published event. The caller holds the Stream's mu, which
// orders publishes.
func (g *group) push(ev nestbox.CapsuleEvent) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.ready) == groupLimit {
		g.ready[0] = nestbox.CapsuleEvent{}
		g.ready = g.ready[1:]
	}
	g.ready = append(g.ready, ev)
	g.signalLocked()
}

func (g *group) signalLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// take hands consumer the next event: the oldest pending one that has been
// idle for idle (its consumer died or failed), else the oldest not yet
// handed out. With none, ok is false, and the caller waits for wake or for
// retryIn (0: no pending event will become claimable by itself).
func (g *group) take(consumer string, idle time.Duration, now time.Time) (id uint64, ev nestbox.CapsuleEvent, ok bool, wake <-chan struct{}, retryIn time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var (
		claim   *pendingEvent
		claimID uint64
	)
	for pid, p := range g.pending {
		left := p.since.Add(idle).Sub(now)
		if left <= 0 {
			if claim == nil || pid < claimID {
				claim, claimID = p, pid
			}
			continue
		}
		if retryIn == 0 || left < retryIn {
			retryIn = left
		}
	}
	switch {
	case claim != nil:
		claim.consumer, claim.since = consumer, now
		id, ev = claimID, claim.ev
	case len(g.ready) > 0:
		ev = g.ready[0]
		g.ready[0] = nestbox.CapsuleEvent{}
		g.ready = g.ready[1:]
		id = g.next
		g.next++
		g.pending[id] = &pendingEvent{ev: ev, consumer: consumer, since: now}
	default:
		return 0, ev, false, g.changed, retryIn
	}
	g.signalLocked()
	return id, ev, true, nil, 0
}

// ack forgets a handled event.
func (g *group) ack(id uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.pending, id)
}

// Consume joins cfg.Group of this Stream (groups are the process's: a
// single machine has one stream) and hands its events to handle, as
// events.Stream documents. It returns nil when ctx is done or the Stream
// is closed.
func (s *Stream) Consume(ctx context.Context, cfg events.GroupConfig, handle func(context.Context, nestbox.CapsuleEvent) error) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errdefs.Unavailable("consume: the event stream is closed")
	}
	g := s.groups[cfg.Group]
	if g == nil {
		g = newGroup()
		s.groups[cfg.Group] = g
	}
	s.mu.Unlock()
	idle := cfg.Idle()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			return nil
		default:
		}
		id, ev, ok, wake, retryIn := g.take(cfg.Consumer, idle, time.Now())
		if ok {
			if handle(ctx, ev) == nil {
				g.ack(id)
			}
			continue
		}
		var timer *time.Timer
		var expired <-chan time.Time
		if retryIn > 0 {
			timer = time.NewTimer(retryIn)
			expired = timer.C
		}
		select {
		case <-ctx.Done():
		case <-s.done:
		case <-wake:
		case <-expired:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}
