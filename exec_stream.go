package nestbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"sync"

	"github.com/coder/websocket"
)

// StreamOption configures ExecStream, Attach and AttachTag.
type StreamOption func(*streamOptions)

type streamOptions struct {
	stdout, stderr io.Writer
	direct         bool
}

// WithOutput writes the process's stdout and stderr to these writers as
// they arrive, from the stream's receive goroutine, in order; a nil writer
// discards that stream. A writer's error ends the stream. Stdout and Stderr
// then return readers that are empty.
func WithOutput(stdout, stderr io.Writer) StreamOption {
	return func(o *streamOptions) {
		o.stdout, o.stderr, o.direct = stdout, stderr, true
	}
}

// ProcessStream is a process in a capsule followed over the exec
// WebSocket: its output arrives as it is written, its stdin is sent as the
// caller writes it. Its methods are safe for concurrent use.
//
// The stream lives as long as the context that opened it, until the
// process exits or until Close.
type ProcessStream struct {
	s              *session
	stdout, stderr *pipeBuffer
	stdinOnce      sync.Once
}

// ExecStream starts req.Cmd in the capsule and returns once the process
// has started. Without WithOutput, its output is buffered in memory until
// read from Stdout and Stderr.
func (h *Handle) ExecStream(ctx context.Context, req ExecRequest, opts ...StreamOption) (*ProcessStream, error) {
	if len(req.Cmd) == 0 {
		return nil, fmt.Errorf("%w: empty command", ErrInvalid)
	}
	first, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	return h.openStream(ctx, nil, first, opts)
}

// Attach follows the output of a running process, such as one begun with
// Start. Output it wrote before the call is not repeated unless the server
// kept it.
func (h *Handle) Attach(ctx context.Context, pid uint32, opts ...StreamOption) (*ProcessStream, error) {
	return h.openStream(ctx, url.Values{"pid": {strconv.FormatUint(uint64(pid), 10)}}, nil, opts)
}

// AttachTag is Attach for the process started with WithTag(tag).
func (h *Handle) AttachTag(ctx context.Context, tag string, opts ...StreamOption) (*ProcessStream, error) {
	return h.openStream(ctx, url.Values{"tag": {tag}}, nil, opts)
}

// openStream dials the exec WebSocket, sends first (if any) and waits for
// the first message.
func (h *Handle) openStream(ctx context.Context, q url.Values, first []byte, opts []StreamOption) (*ProcessStream, error) {
	var o streamOptions
	for _, f := range opts {
		f(&o)
	}
	conn, err := h.c.dial(ctx, pathf("/v1/capsules/%s/exec/stream", h.id), q)
	if err != nil {
		return nil, err
	}
	if first != nil {
		if err := conn.Write(ctx, websocket.MessageText, first); err != nil {
			_ = conn.CloseNow()
			return nil, fmt.Errorf("exec stream: send request: %w", err)
		}
	}
	p := &ProcessStream{
		s:      newSession(ctx, conn, "exec stream"),
		stdout: newPipeBuffer(),
		stderr: newPipeBuffer(),
	}
	if o.direct {
		p.stdout.closeWithError(nil)
		p.stderr.closeWithError(nil)
	}
	stdout, stderr := io.Writer(p.stdout), io.Writer(p.stderr)
	if o.direct {
		stdout, stderr = o.stdout, o.stderr
	}
	p.s.output = func(kind string, data []byte) error {
		w := stdout
		if kind == "stderr" {
			w = stderr
		}
		if w == nil || kind == "binary" {
			return nil
		}
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", kind, err)
		}
		return nil
	}
	p.s.end = func(err error) {
		p.stdout.closeWithError(err)
		p.stderr.closeWithError(err)
	}
	if pid, err := strconv.ParseUint(q.Get("pid"), 10, 32); err == nil {
		p.s.pid = uint32(pid)
	}
	p.s.tag = q.Get("tag")
	go p.s.run()
	if err := p.s.waitStarted(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Pid returns the process's ID in the capsule.
func (p *ProcessStream) Pid() uint32 { return p.s.pid }

// Tag returns the process's tag, if it has one.
func (p *ProcessStream) Tag() string { return p.s.tag }

// Stdout returns the process's standard output. It ends with io.EOF when
// the process has exited, or with the stream's error.
func (p *ProcessStream) Stdout() io.Reader { return p.stdout }

// Stderr returns the process's standard error, like Stdout.
func (p *ProcessStream) Stderr() io.Reader { return p.stderr }

// Stdin returns a writer to the process's standard input; closing it
// closes the process's stdin.
func (p *ProcessStream) Stdin() io.WriteCloser { return stdinWriter{p} }

type stdinWriter struct{ p *ProcessStream }

func (w stdinWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), stdinChunk)]
		if err := w.p.s.send(w.p.s.ctx, StreamMessage{Type: "stdin", Data: chunk}); err != nil {
			return n, err
		}
		n += len(chunk)
		b = b[len(chunk):]
	}
	return n, nil
}

// Close closes the process's stdin; later calls do nothing.
func (w stdinWriter) Close() error {
	var err error
	w.p.stdinOnce.Do(func() {
		err = w.p.s.send(w.p.s.ctx, StreamMessage{Type: "close_stdin"})
	})
	return err
}

// Signal sends sig to the process.
func (p *ProcessStream) Signal(ctx context.Context, sig Signal) error {
	return p.s.send(ctx, StreamMessage{Type: "signal", Signal: string(sig)})
}

// Wait blocks until the process exits and returns its exit code; -1 means
// it was killed by a signal, and ExitReason says why. The error is not nil
// only when the stream ended before the exit was known (then the code is
// -1): the connection was lost, the context ended (the context's error),
// or Close was called (an error matching net.ErrClosed).
func (p *ProcessStream) Wait() (int, error) { return p.s.wait() }

// ExitReason says why a process that did not exit normally ended
// ("signal: killed", "timed out"); it is empty otherwise. It waits like
// Wait.
func (p *ProcessStream) ExitReason() string {
	<-p.s.done
	return p.s.reason
}

// Close ends the stream without waiting for the process, which the server
// may keep running (see Attach). It is safe to call more than once and
// after the process exited.
func (p *ProcessStream) Close() error { return p.s.close() }
