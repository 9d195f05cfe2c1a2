package nestbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"

	"github.com/coder/websocket"
)

// session is the receiving half shared by ProcessStream and Terminal: one
// goroutine reads the WebSocket until the process exits, the stream fails
// or the caller closes it.
type session struct {
	conn *websocket.Conn
	// ctx is the stream's lifetime, derived from the context that opened
	// it. It is kept because io.Writer's Write has no context parameter.
	ctx    context.Context
	cancel context.CancelFunc
	what   string // names the stream in errors
	// output receives "stdout" and "stderr" messages and, with kind
	// "binary", binary frames. An error ends the stream.
	output func(kind string, data []byte) error
	// end is called once, before done is closed, with the stream's error
	// (nil after "exit").
	end func(err error)

	started  chan struct{} // closed at the first message or at the end
	done     chan struct{} // closed when the outcome below is known
	finished chan struct{} // closed when the receive goroutine has returned
	closing  chan struct{} // closed by close; makes the end net.ErrClosed
	closeOne sync.Once     // closes closing

	// Written before started is closed.
	pid uint32
	tag string
	// Written before done is closed.
	exited   bool
	exitCode int
	reason   string
	err      error
}

func newSession(ctx context.Context, conn *websocket.Conn, what string) *session {
	ctx, cancel := context.WithCancel(ctx)
	return &session{
		conn:     conn,
		ctx:      ctx,
		cancel:   cancel,
		what:     what,
		output:   func(string, []byte) error { return nil },
		end:      func(error) {},
		started:  make(chan struct{}),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
		closing:  make(chan struct{}),
	}
}

// run is the receive goroutine; close joins it.
func (s *session) run() {
	defer close(s.finished)
	defer s.cancel()
	var once sync.Once
	markStarted := func() { once.Do(func() { close(s.started) }) }
	err := s.receive(markStarted)
	select {
	case <-s.closing:
		if !s.exited {
			err = fmt.Errorf("%s: %w", s.what, net.ErrClosed)
		}
	default:
	}
	s.err = err
	s.end(err)
	// done before started: waitStarted, woken by the end, must see it.
	close(s.done)
	markStarted()
	if err == nil {
		// The server closes after "exit"; answer its close handshake.
		_ = s.conn.Close(websocket.StatusNormalClosure, "")
		return
	}
	_ = s.conn.CloseNow()
}

func (s *session) receive(markStarted func()) error {
	// "error" comes right before the server closes the stream: it is the
	// stream's error if the stream ends before the exit. "rejected"
	// refuses one message of ours; the stream goes on.
	var lastErr error
	for {
		typ, b, err := s.conn.Read(s.ctx)
		if err != nil {
			if lastErr != nil && s.ctx.Err() == nil {
				return lastErr
			}
			return streamErr(s.ctx, s.what, err)
		}
		if typ == websocket.MessageBinary {
			markStarted()
			if err := s.output("binary", b); err != nil {
				return err
			}
			continue
		}
		var m StreamMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("%s: bad message: %w", s.what, err)
		}
		switch m.Type {
		case "started":
			select {
			case <-s.started:
			default:
				if m.Pid != 0 {
					s.pid = m.Pid
				}
				if m.Tag != "" {
					s.tag = m.Tag
				}
			}
		case "stdout", "stderr":
			markStarted()
			if err := s.output(m.Type, m.Data); err != nil {
				return err
			}
		case "exit":
			s.exited, s.exitCode, s.reason = true, m.ExitCode, m.Error
			return nil
		case "error":
			lastErr = fmt.Errorf("%s: %w", s.what, &APIError{Code: m.Code, Message: m.Error})
			continue // an error is no sign of a start
		case "rejected":
			continue
		}
		markStarted() // unknown types are skipped, for newer servers
	}
}

// waitStarted blocks until the first message. It returns the stream's
// error if the stream ended before any.
func (s *session) waitStarted(ctx context.Context) error {
	select {
	case <-s.started:
	case <-ctx.Done():
		s.close()
		return ctx.Err()
	}
	select {
	case <-s.done:
		if !s.exited {
			s.close()
			return s.err
		}
	default:
	}
	return nil
}

// wait blocks until the process exits or the stream ends.
func (s *session) wait() (int, error) {
	<-s.done
	if s.exited {
		return s.exitCode, nil
	}
	return -1, s.err
}

// close ends the stream and joins the receive goroutine.
func (s *session) close() error {
	s.closeOne.Do(func() { close(s.closing) })
	select {
	case <-s.done:
	default:
		_ = s.conn.Close(websocket.StatusNormalClosure, "")
	}
	s.cancel()
	<-s.finished
	return nil
}

// send writes a control message.
func (s *session) send(ctx context.Context, m StreamMessage) error {
	if err := writeMessage(ctx, s.conn, m); err != nil {
		return fmt.Errorf("%s: send %s: %w", s.what, m.Type, err)
	}
	return nil
}
