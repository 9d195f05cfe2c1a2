package memory

import "nestbox.dev/internal/events"

// subscriber is one subscription: a queue that publishers push into
// without blocking, delivered by its own goroutine.
type subscriber struct {
	*events.Queue
	stopWatch func() bool // stops the ctx watch; set once by Subscribe
}

func newSubscriber(size int) *subscriber {
	return &subscriber{Queue: events.NewQueue(size)}
}
