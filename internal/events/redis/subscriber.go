package redis

import (
	"sync"

	"nestbox.dev"
	"nestbox.dev/internal/events"
)

// entry is what the reader fans out: an event and the ID of the stream
// entry it came from. A gap marker's id bounds the entries that may be
// missing: a subscription that started at or after it lost nothing.
type entry struct {
	id streamID
	ev nestbox.CapsuleEvent
}

// subscriber is one subscription: entries the reader offers are filtered
// by the subscription's start and pushed into a queue, delivered by its
// own goroutine.
type subscriber struct {
	*events.Queue
	stopWatch func() bool // stops the ctx watch; set once by Subscribe

	// mu guards the fields below it.
	mu sync.Mutex
	// started is set by begin, when the stream's end at Subscribe is known:
	// entries up to start are older than the subscription. Until then the
	// reader's entries wait in held.
	started bool
	start   streamID
	held    []entry
}

func newSubscriber(size int) *subscriber {
	return &subscriber{Queue: events.NewQueue(size)}
}

// begin starts the subscription after start: held entries up to it are
// dropped, later ones delivered.
func (s *subscriber) begin(start streamID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = true
	s.start = start
	held := s.held
	s.held = nil
	for _, e := range held {
		s.offerLocked(e)
	}
}

// offer hands the subscriber an entry of the stream, in stream order.
func (s *subscriber) offer(e entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.held = append(s.held, e)
		return
	}
	s.offerLocked(e)
}

func (s *subscriber) offerLocked(e entry) {
	if !s.start.less(e.id) {
		return // older than the subscription
	}
	s.Push(e.ev)
}

// gapMarker is the event that tells a subscriber it may have missed events.
func gapMarker(why string) nestbox.CapsuleEvent { return events.GapMarker(why) }
