package process

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
)

// proc is one process envd started, from fork until its end event.
type proc struct {
	pid    uint32
	tag    *string
	config *processpb.ProcessConfig // as requested, cwd resolved; read-only
	pty    *os.File                 // PTY master; nil for a pipe process
	stdin  *os.File                 // stdin pipe's write end; nil without one
	seq    uint64                   // start order; set by table.add

	bufSize     int           // capacity of each follower's channel
	slowTimeout time.Duration // how long a full follower may hold up output

	// inMu serialises input, so that concurrent writers do not interleave,
	// and guards stdinClosed.
	inMu        sync.Mutex
	stdinClosed bool

	// pubMu serialises publishing: sending to followers, cutting them off
	// and closing their channels all happen under it, so a channel is
	// never sent on after it is closed.
	pubMu sync.Mutex
	batch []*follower // scratch list of followers for one publish

	// mu guards the follower set and the end state.
	mu        sync.Mutex
	followers map[*follower]struct{}
	exited    bool // the reaper has delivered the exit status
	ended     bool // the end event is published; followers is nil
	end       *processpb.ProcessEvent_EndEvent
	endErr    error // non-nil when the process was abandoned, not ended
}

// follower is one stream following a process.
type follower struct {
	// ch carries data events. The publisher closes it after setting end or
	// err, so the follower reads them only after ch is closed.
	ch   chan *processpb.ProcessEvent
	end  *processpb.ProcessEvent_EndEvent
	err  error
	gone chan struct{} // closed by unsubscribe
	once sync.Once
}

// subscribe adds a follower. Output produced before the call is not
// replayed; a follower of an ended process gets its end at once.
func (p *proc) subscribe() *follower {
	f := &follower{ch: make(chan *processpb.ProcessEvent, p.bufSize), gone: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		f.end, f.err = p.end, p.endErr
		close(f.ch)
		return f
	}
	p.followers[f] = struct{}{}
	return f
}

// unsubscribe removes f; a publisher blocked on f gives up at once.
func (p *proc) unsubscribe(f *follower) {
	f.once.Do(func() { close(f.gone) })
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.followers, f)
}

// publishData sends a copy of b as a data event to every follower. Nothing
// is copied or kept when nobody follows.
func (p *proc) publishData(kind outputKind, b []byte) {
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	p.mu.Lock()
	p.batch = p.batch[:0]
	for f := range p.followers {
		p.batch = append(p.batch, f)
	}
	p.mu.Unlock()
	if len(p.batch) == 0 {
		return
	}
	ev := dataEvent(kind, bytes.Clone(b))
	for _, f := range p.batch {
		if !p.deliver(f, ev) {
			p.cutOff(f)
		}
	}
	clear(p.batch) // do not keep departed followers alive
}

// deliver sends ev to f, waiting up to slowTimeout when f's channel is
// full. It reports false when f has to be cut off.
func (p *proc) deliver(f *follower, ev *processpb.ProcessEvent) bool {
	select {
	case f.ch <- ev:
		return true
	case <-f.gone:
		return true
	default:
	}
	t := time.NewTimer(p.slowTimeout)
	defer t.Stop()
	select {
	case f.ch <- ev:
		return true
	case <-f.gone:
		return true
	case <-t.C:
		return false
	}
}

// cutOff ends f's stream with resource_exhausted. Called under pubMu.
func (p *proc) cutOff(f *follower) {
	p.mu.Lock()
	_, ok := p.followers[f]
	delete(p.followers, f)
	p.mu.Unlock()
	if !ok {
		return // it left meanwhile and nobody reads ch
	}
	f.err = fmt.Errorf("follow process %d: %d events behind for %s: %w", p.pid, cap(f.ch), p.slowTimeout, errdefs.ErrExhausted)
	close(f.ch)
}

// markExited records that the reaper delivered the exit status; List no
// longer shows the process.
func (p *proc) markExited() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exited = true
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.exited
}

// finish publishes the end (or, with err, abandons the process) and ends
// every follower's stream. Called once, after the last data event.
func (p *proc) finish(end *processpb.ProcessEvent_EndEvent, err error) {
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	p.mu.Lock()
	p.ended, p.exited, p.end, p.endErr = true, true, end, err
	followers := p.followers
	p.followers = nil
	p.mu.Unlock()
	for f := range followers {
		f.end, f.err = end, err
		close(f.ch)
	}
}

// endEvent describes a wait status the way E2B's envd does, which reports
// Go's os.ProcessState: exit code -1 and exited false for a signal, the
// status text of ProcessState.String, and that text again as the error of
// any unsuccessful end.
func endEvent(ws syscall.WaitStatus) *processpb.ProcessEvent_EndEvent {
	end := &processpb.ProcessEvent_EndEvent{ExitCode: -1, Exited: ws.Exited(), Status: exitStatus(ws)}
	if ws.Exited() {
		end.ExitCode = int32(ws.ExitStatus())
	}
	if end.ExitCode != 0 {
		msg := end.Status
		end.Error = &msg
	}
	return end
}

// exitStatus formats ws like os.ProcessState.String.
func exitStatus(ws syscall.WaitStatus) string {
	var s string
	switch {
	case ws.Exited():
		s = fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		s = "signal: " + ws.Signal().String()
	case ws.Stopped():
		s = "stop signal: " + ws.StopSignal().String()
	case ws.Continued():
		s = "continued"
	}
	if ws.CoreDump() {
		s += " (core dumped)"
	}
	return s
}
