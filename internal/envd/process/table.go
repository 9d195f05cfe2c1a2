package process

import (
	"cmp"
	"slices"
	"sync"
)

// table is the set of processes envd started that have not ended yet. It is
// safe for concurrent use.
type table struct {
	mu   sync.RWMutex
	pids map[uint32]*proc
	seq  uint64 // start order, to pick the oldest of several with one tag
}

func newTable() *table {
	return &table{pids: map[uint32]*proc{}}
}

// add registers p. A pid still held by a process that has exited but not yet
// ended (its output is draining) can be reused by the kernel; the newer
// process wins the slot.
func (t *table) add(p *proc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	p.seq = t.seq
	t.pids[p.pid] = p
}

// remove unregisters p, unless its pid already belongs to a newer process.
func (t *table) remove(p *proc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pids[p.pid] == p {
		delete(t.pids, p.pid)
	}
}

func (t *table) byPID(pid uint32) *proc {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.pids[pid]
}

// byTag returns the oldest process with tag. Tags are not unique: E2B's envd
// does not enforce that either.
func (t *table) byTag(tag string) *proc {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var found *proc
	for _, p := range t.pids {
		if p.tag != nil && *p.tag == tag && (found == nil || p.seq < found.seq) {
			found = p
		}
	}
	return found
}

// all returns the processes in start order.
func (t *table) all() []*proc {
	t.mu.RLock()
	out := make([]*proc, 0, len(t.pids))
	for _, p := range t.pids {
		out = append(out, p)
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b *proc) int { return cmp.Compare(a.seq, b.seq) })
	return out
}
