package memory

import (
	"fmt"
	"sync"
	"time"

	"nestbox.dev"
)

// subscriber is one subscription: a ring buffer that publishers push into
// without blocking, and a goroutine (deliver) that moves events from it to
// the subscriber's unbuffered channel as fast as the subscriber reads.
type subscriber struct {
	out       chan nestbox.CapsuleEvent // closed by deliver when it returns
	wake      chan struct{}             // capacity 1: "the buffer changed"
	done      chan struct{}             // closed by stop
	stopOnce  sync.Once
	stopWatch func() bool // stops the ctx watch; set once by Subscribe

	// mu guards the ring and the loss count.
	mu   sync.Mutex
	ring []nestbox.CapsuleEvent
	head int // index of the oldest buffered event
	n    int // number of buffered events
	// lost counts events dropped since the last gap marker was delivered.
	lost int
}

func newSubscriber(size int) *subscriber {
	return &subscriber{
		out:  make(chan nestbox.CapsuleEvent),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
		ring: make([]nestbox.CapsuleEvent, size),
	}
}

// push buffers ev. When the buffer is full the oldest event is dropped and
// counted, so that deliver sends a gap marker before the survivors.
func (s *subscriber) push(ev nestbox.CapsuleEvent) {
	s.mu.Lock()
	if s.n == len(s.ring) {
		s.ring[s.head] = nestbox.CapsuleEvent{} // let go of its strings
		s.head = (s.head + 1) % len(s.ring)
		s.n--
		s.lost++
	}
	s.ring[(s.head+s.n)%len(s.ring)] = ev
	s.n++
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// next takes what deliver sends next: a gap marker when events were lost
// (they were all older than what is still buffered), else the oldest event.
func (s *subscriber) next() (nestbox.CapsuleEvent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost > 0 {
		ev := gapMarker(s.lost)
		s.lost = 0
		return ev, true
	}
	if s.n == 0 {
		return nestbox.CapsuleEvent{}, false
	}
	ev := s.ring[s.head]
	s.ring[s.head] = nestbox.CapsuleEvent{}
	s.head = (s.head + 1) % len(s.ring)
	s.n--
	return ev, true
}

// deliver runs for the life of the subscription and closes out when it
// ends. Buffered events are dropped when the subscription stops.
func (s *subscriber) deliver() {
	defer close(s.out)
	for {
		ev, ok := s.next()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		select {
		case s.out <- ev:
		case <-s.done:
			return
		}
	}
}

func (s *subscriber) stop() {
	s.stopOnce.Do(func() { close(s.done) })
}

// gapMarker is the event that tells a subscriber it lost events: To is
// empty, as events.Stream specifies.
func gapMarker(lost int) nestbox.CapsuleEvent {
	return nestbox.CapsuleEvent{
		Reason: fmt.Sprintf("subscriber fell behind: %d events lost, re-read the store", lost),
		At:     time.Now().UTC(),
	}
}
