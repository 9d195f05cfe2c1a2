package process

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
)

// readSize is the most one data event carries.
const readSize = 32 << 10

type outputKind int

const (
	stdoutKind outputKind = iota
	stderrKind
	ptyKind
)

// output is one stream envd reads from a process: a pipe's read end or the
// PTY master. The file must be pollable (non-blocking), so that a read
// deadline can cut a read that would never end.
type output struct {
	kind outputKind
	f    *os.File
}

func dataEvent(kind outputKind, b []byte) *processpb.ProcessEvent {
	d := &processpb.ProcessEvent_DataEvent{}
	switch kind {
	case stdoutKind:
		d.Output = &processpb.ProcessEvent_DataEvent_Stdout{Stdout: b}
	case stderrKind:
		d.Output = &processpb.ProcessEvent_DataEvent_Stderr{Stderr: b}
	case ptyKind:
		d.Output = &processpb.ProcessEvent_DataEvent_Pty{Pty: b}
	}
	return &processpb.ProcessEvent{Event: &processpb.ProcessEvent_Data{Data: d}}
}

// readOutput publishes what o yields until EOF (for a PTY master: EIO, once
// no process holds the terminal open) or until supervise cuts it.
func (s *Service) readOutput(p *proc, o output) {
	buf := make([]byte, readSize)
	for {
		n, err := o.f.Read(buf)
		if n > 0 {
			p.publishData(o.kind, buf[:n])
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.EIO) && !errors.Is(err, os.ErrDeadlineExceeded) {
				s.log.Debug("read process output", "pid", p.pid, "err", err)
			}
			return
		}
	}
}

// supervise owns p from fork to end: it reads p's output, waits for its
// exit status (killing it once timeout, if non-zero, has passed), drains
// the output (at most OutputGrace longer: a background grandchild may hold
// the pipes open forever), publishes the end event and removes p from the
// table. It gives up on Close.
func (s *Service) supervise(p *proc, exited <-chan syscall.WaitStatus, outs []output, timeout time.Duration) {
	defer s.wg.Done()
	var readers sync.WaitGroup
	for _, o := range outs {
		readers.Go(func() { s.readOutput(p, o) })
	}
	drained := make(chan struct{})
	go func() {
		readers.Wait()
		close(drained)
	}()

	var kill <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		kill = t.C
	}
	var (
		end *processpb.ProcessEvent_EndEvent
		err error
	)
	for end == nil && err == nil {
		select {
		case <-kill:
			if kerr := s.reaper.signal(int(p.pid), unix.SIGKILL); kerr != nil {
				s.log.Warn("kill process after its timeout", "pid", p.pid, "timeout", timeout, "err", kerr)
			}
			kill = nil
		case ws := <-exited:
			p.markExited()
			end = endEvent(ws)
			s.drain(p, outs, drained)
		case <-s.closing:
			cut(outs)
			err = errdefs.Unavailable("process %d is no longer followed: the process service is closing", p.pid)
		}
	}
	<-drained
	for _, o := range outs {
		o.f.Close()
	}
	p.closeStdin(true)
	p.finish(end, err)
	s.procs.remove(p)
}

// drain waits until the readers of an exited process are done, for at most
// the grace period (or until Close), then cuts them.
func (s *Service) drain(p *proc, outs []output, drained <-chan struct{}) {
	grace := time.NewTimer(s.cfg.OutputGrace)
	defer grace.Stop()
	select {
	case <-drained:
	case <-grace.C:
		s.log.Debug("process output still open after exit; cutting it", "pid", p.pid, "grace", s.cfg.OutputGrace)
		cut(outs)
	case <-s.closing:
		cut(outs)
	}
}

// cut makes pending and future reads of outs return at once.
func cut(outs []output) {
	for _, o := range outs {
		if o.f.SetReadDeadline(time.Now()) != nil {
			o.f.Close() // not pollable: closing is the best we can do
		}
	}
}
