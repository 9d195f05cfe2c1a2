package events

import (
	"fmt"
	"sync"
	"time"

	"nestbox.dev"
)

// Queue is one subscriber's buffer, shared by the Stream implementations:
// pushes never block; when the buffer is full the oldest event is dropped,
// and a gap marker (To == "") is delivered before the events that
// survived. Run moves events to Out as fast as the subscriber reads, until
// Stop. Its methods are safe for concurrent use.
type Queue struct {
	out      chan nestbox.CapsuleEvent // closed by Run when it returns
	wake     chan struct{}             // capacity 1: "the ring changed"
	done     chan struct{}             // closed by Stop
	stopOnce sync.Once

	// mu guards the ring and the loss count.
	mu   sync.Mutex
	ring []nestbox.CapsuleEvent
	head int // index of the oldest buffered event
	n    int // number of buffered events
	// lost counts events dropped since the last overflow marker was
	// delivered.
	lost int
}

// NewQueue returns a Queue that buffers up to size events.
func NewQueue(size int) *Queue {
	return &Queue{
		out:  make(chan nestbox.CapsuleEvent),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
		ring: make([]nestbox.CapsuleEvent, size),
	}
}

// Out is the subscriber's channel; it is closed when Run returns.
func (q *Queue) Out() <-chan nestbox.CapsuleEvent { return q.out }

// Push buffers ev. A gap marker right after another undelivered one is
// dropped: one re-read of the store covers both.
func (q *Queue) Push(ev nestbox.CapsuleEvent) {
	q.mu.Lock()
	if ev.To == "" && q.n > 0 && q.ring[(q.head+q.n-1)%len(q.ring)].To == "" {
		q.mu.Unlock()
		return
	}
	if q.n == len(q.ring) {
		q.ring[q.head] = nestbox.CapsuleEvent{} // let go of its strings
		q.head = (q.head + 1) % len(q.ring)
		q.n--
		q.lost++
	}
	q.ring[(q.head+q.n)%len(q.ring)] = ev
	q.n++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// next takes what Run sends next: an overflow marker when events were
// dropped (they were all older than what is still buffered), else the
// oldest buffered event.
func (q *Queue) next() (nestbox.CapsuleEvent, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.lost > 0 {
		ev := GapMarker(fmt.Sprintf("subscriber fell behind: %d events lost", q.lost))
		q.lost = 0
		return ev, true
	}
	if q.n == 0 {
		return nestbox.CapsuleEvent{}, false
	}
	ev := q.ring[q.head]
	q.ring[q.head] = nestbox.CapsuleEvent{}
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	return ev, true
}

// Len is how many events the queue holds undelivered (not counting one
// Run has taken and is handing to the subscriber).
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Run delivers events for the life of the subscription and closes Out when
// Stop is called; events still buffered then are dropped.
func (q *Queue) Run() {
	defer close(q.out)
	for {
		ev, ok := q.next()
		if !ok {
			select {
			case <-q.wake:
				continue
			case <-q.done:
				return
			}
		}
		select {
		case q.out <- ev:
		case <-q.done:
			return
		}
	}
}

// Stop ends Run. It may be called more than once.
func (q *Queue) Stop() { q.stopOnce.Do(func() { close(q.done) }) }

// GapMarker is the event that tells a subscriber it may have missed events
// and must re-read the store: To is empty.
func GapMarker(why string) nestbox.CapsuleEvent {
	return nestbox.CapsuleEvent{Reason: why + ", re-read the store", At: time.Now().UTC()}
}
