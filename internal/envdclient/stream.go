package envdclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
)

// Message types of a Stream, as in nestbox.StreamMessage.
const (
	msgStarted = "started"
	msgStdout  = "stdout"
	msgStderr  = "stderr"
	msgExit    = "exit"
)

// errTimedOut is the ExecResult and exit message error of a process that
// envd killed at its timeout.
const errTimedOut = "timed out"

// Stream follows one process: a "started" message, its output ("stdout",
// "stderr"; a PTY's output is "stdout") and an "exit" message, then io.EOF.
// Closing a Stream stops following; it does not kill the process.
//
// Recv must not be called concurrently with itself. Close may be called at
// any time, also while Recv waits; Recv then fails. Call Close when done
// with a Stream, also after io.EOF: it releases the request.
type Stream struct {
	op      string
	src     source
	slot    *failure
	pid     uint32
	tag     string
	timeout time.Duration // envd kills the process after it; 0: never
	begun   time.Time     // when the request left, to tell a timeout kill

	// stop ends the request; unwatch stops cancelling it with the
	// caller's context.
	stop    context.CancelFunc
	unwatch func() bool
	once    sync.Once

	// mu guards why.
	mu sync.Mutex
	// why is the reason this side stopped the request (the caller's
	// context ended, or Close), which is what Recv then reports instead of
	// the cancellation connect-go sees.
	why error

	pending []nestbox.StreamMessage
	ended   bool // the exit message was returned
	drained bool // the source was read to its end after the exit
}

// source is the receive side of a Start or Connect stream.
type source struct {
	receive func() (*processpb.ProcessEvent, bool)
	err     func() error
	close   func() error
}

// eventResponse is StartResponse and ConnectResponse.
type eventResponse interface {
	GetEvent() *processpb.ProcessEvent
}

func sourceOf[Res any, PRes interface {
	*Res
	eventResponse
}](st *connect.ServerStreamForClient[Res]) source {
	return source{
		receive: func() (*processpb.ProcessEvent, bool) {
			if !st.Receive() {
				return nil, false
			}
			return PRes(st.Msg()).GetEvent(), true
		},
		err:   st.Err,
		close: st.Close,
	}
}

// openStream runs open under a context that the caller's ctx cancels but
// whose deadline it does not pass on: connect-go would send that deadline
// to envd as Connect-Timeout-Ms, and envd kills a process at it. The only
// deadline envd hears of is timeout, set explicitly. The stream's first
// event (start) is read before openStream returns, so that a process that
// cannot start is an error here.
func openStream(ctx context.Context, op, tag string, timeout time.Duration, open func(ctx context.Context) (source, error)) (*Stream, error) {
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	sctx, slot := withFailure(sctx)
	s := &Stream{op: op, slot: slot, tag: tag, timeout: timeout, begun: time.Now(), stop: stop}
	s.unwatch = context.AfterFunc(ctx, func() { s.halt(context.Cause(ctx)) })
	src, err := open(sctx)
	if err != nil {
		err = s.error(err) // before Close, which would give its own reason
		s.Close()
		return nil, err
	}
	s.src = src
	for {
		ev, ok := src.receive()
		if !ok {
			err := src.err()
			if err == nil {
				err = errdefs.Unavailable("the stream ended before the process started")
			}
			err = s.error(err)
			s.Close()
			return nil, err
		}
		if st := ev.GetStart(); st != nil {
			s.pid = st.GetPid()
			s.pending = append(s.pending, nestbox.StreamMessage{Type: msgStarted, Pid: s.pid, Tag: tag})
			return s, nil
		}
		if ev.GetKeepalive() == nil {
			s.Close()
			return nil, fmt.Errorf("%s: %w", op, errdefs.Unavailable("the stream did not begin with the start event"))
		}
	}
}

// Pid is the process's pid.
func (s *Stream) Pid() uint32 { return s.pid }

// Recv returns the next message, or io.EOF after the exit message.
func (s *Stream) Recv() (nestbox.StreamMessage, error) {
	if len(s.pending) > 0 {
		m := s.pending[0]
		s.pending = s.pending[1:]
		return m, nil
	}
	if s.ended {
		if !s.drained {
			// envd ends the stream right after the end event; reading
			// that lets the connection be reused.
			for _, ok := s.src.receive(); ok; _, ok = s.src.receive() {
			}
			s.drained = true
		}
		return nestbox.StreamMessage{}, io.EOF
	}
	for {
		ev, ok := s.src.receive()
		if !ok {
			return s.fail(s.src.err())
		}
		switch e := ev.GetEvent().(type) {
		case *processpb.ProcessEvent_Data:
			switch out := e.Data.GetOutput().(type) {
			case *processpb.ProcessEvent_DataEvent_Stdout:
				return nestbox.StreamMessage{Type: msgStdout, Data: out.Stdout}, nil
			case *processpb.ProcessEvent_DataEvent_Stderr:
				return nestbox.StreamMessage{Type: msgStderr, Data: out.Stderr}, nil
			case *processpb.ProcessEvent_DataEvent_Pty:
				return nestbox.StreamMessage{Type: msgStdout, Data: out.Pty}, nil
			}
		case *processpb.ProcessEvent_End:
			s.ended = true
			return s.exit(e.End), nil
		}
		// Keepalives, a repeated start and empty data carry nothing.
	}
}

// exit turns envd's end event into the exit message. A non-zero exit is
// told by its code alone; a signal, by its name, and as "timed out" when it
// is envd's kill at the timeout.
func (s *Stream) exit(end *processpb.ProcessEvent_EndEvent) nestbox.StreamMessage {
	m := nestbox.StreamMessage{Type: msgExit, Pid: s.pid, ExitCode: int(end.GetExitCode())}
	if !end.GetExited() {
		m.ExitCode = -1
		m.Error = end.GetStatus()
		if s.timeout > 0 && time.Since(s.begun) >= s.timeout {
			// envd kills at the timeout and nobody else kills after it.
			m.Error = errTimedOut
		}
	}
	return m
}

// fail ends the stream with err. The timeout that envd enforces also ends
// the stream's request on its side, which may come before the end event:
// that is the process's timeout, not an error.
func (s *Stream) fail(err error) (nestbox.StreamMessage, error) {
	if err == nil {
		err = errdefs.Unavailable("the stream ended before the process did")
	}
	if s.timeout > 0 && connect.CodeOf(err) == connect.CodeDeadlineExceeded {
		s.ended, s.drained = true, true
		return nestbox.StreamMessage{Type: msgExit, Pid: s.pid, ExitCode: -1, Error: errTimedOut}, nil
	}
	return nestbox.StreamMessage{}, s.error(err)
}

// error describes err of the stream: the reason this side stopped it, if
// it did, else envd's (or the proxy's) error.
func (s *Stream) error(err error) error {
	s.mu.Lock()
	why := s.why
	s.mu.Unlock()
	if why != nil {
		return fmt.Errorf("%s: %w", s.op, why)
	}
	return rpcError(s.op, err, s.slot)
}

// errClosed is what Recv reports after Close.
var errClosed = errors.New("stream closed")

// halt stops the request for why; the first reason sticks.
func (s *Stream) halt(why error) {
	s.mu.Lock()
	if s.why == nil {
		s.why = why
	}
	s.mu.Unlock()
	s.stop()
}

// Close stops following the process and releases the stream. It is
// idempotent and never kills the process.
func (s *Stream) Close() error {
	s.once.Do(func() {
		s.unwatch()
		s.halt(errClosed)
		if s.src.close != nil {
			// The request is cancelled; closing only releases it.
			s.src.close()
		}
	})
	return nil
}
