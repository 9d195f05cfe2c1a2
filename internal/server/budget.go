package server

import "sync"

// Bounds of one-shot exec output held by the control plane.
const (
	defaultExecOutput      = 8 << 20   // per stream and request
	defaultExecOutputTotal = 256 << 20 // across requests
	// minExecOutput is the least share per stream a one-shot exec runs
	// with when the budget runs low; below it the exec is refused.
	minExecOutput = 64 << 10
)

// byteBudget is a pool of bytes that requests reserve before they buffer
// and give back after: a semaphore of bytes that never blocks, handing out
// what is left when less than asked for is. Safe for concurrent use.
type byteBudget struct {
	// mu guards free.
	mu   sync.Mutex
	free int64
}

func newByteBudget(total int64) *byteBudget { return &byteBudget{free: total} }

// take reserves up to n bytes and returns how many it reserved.
func (b *byteBudget) take(n int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	n = max(0, min(n, b.free))
	b.free -= n
	return n
}

// give returns n bytes taken earlier.
func (b *byteBudget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
}
