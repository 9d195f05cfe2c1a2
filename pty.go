package nestbox

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"github.com/coder/websocket"
)

// PTYOptions describes the terminal that PTY opens. The zero value is an
// 80x24 login shell of the default user.
type PTYOptions struct {
	// Cols and Rows are the terminal's size; zero means 80 and 24.
	Cols, Rows int
	// Tag names the terminal's process: if one with this tag runs, PTY
	// reattaches to it instead of starting a new one.
	Tag string
	// Cmd is a shell command line to run instead of a login shell.
	Cmd string
	// User defaults to "user"; Cwd to the user's home directory.
	User, Cwd string
}

// Terminal is an interactive terminal in a capsule: Read returns what the
// terminal shows, Write types keystrokes. Read and Write may be called
// concurrently with each other and with the other methods.
//
// The terminal lives as long as the context that opened it, until its
// process exits or until Close. Output that is not read is buffered in
// memory.
type Terminal struct {
	s   *session
	out *pipeBuffer
}

// PTY opens a terminal and returns once its process has started.
func (h *Handle) PTY(ctx context.Context, opts PTYOptions) (*Terminal, error) {
	if opts.Cols <= 0 {
		opts.Cols = 80
	}
	if opts.Rows <= 0 {
		opts.Rows = 24
	}
	q := url.Values{
		"cols": {strconv.Itoa(opts.Cols)},
		"rows": {strconv.Itoa(opts.Rows)},
	}
	for k, v := range map[string]string{"tag": opts.Tag, "cmd": opts.Cmd, "user": opts.User, "cwd": opts.Cwd} {
		if v != "" {
			q.Set(k, v)
		}
	}
	conn, err := h.c.dial(ctx, pathf("/v1/capsules/%s/pty", h.id), q)
	if err != nil {
		return nil, err
	}
	t := &Terminal{s: newSession(ctx, conn, "terminal"), out: newPipeBuffer()}
	t.s.tag = opts.Tag
	t.s.output = func(kind string, data []byte) error {
		if kind == "binary" {
			_, _ = t.out.Write(data)
		}
		return nil
	}
	t.s.end = t.out.closeWithError
	go t.s.run()
	if err := t.s.waitStarted(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// Pid returns the ID of the terminal's process in the capsule.
func (t *Terminal) Pid() uint32 { return t.s.pid }

// Tag returns the terminal's tag, if it has one.
func (t *Terminal) Tag() string { return t.s.tag }

// Read reads terminal output. It returns io.EOF once the process has
// exited and all output is read.
func (t *Terminal) Read(p []byte) (int, error) { return t.out.Read(p) }

// Write sends keystrokes, such as "ls\r" or "\x03" for Ctrl-C. A long
// write (a paste) is sent in several frames.
func (t *Terminal) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), stdinChunk)]
		if err := t.s.conn.Write(t.s.ctx, websocket.MessageBinary, chunk); err != nil {
			return n, fmt.Errorf("terminal: write: %w", err)
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// Resize changes the terminal's size.
func (t *Terminal) Resize(ctx context.Context, cols, rows int) error {
	if cols <= 0 || rows <= 0 {
		return fmt.Errorf("%w: terminal size %dx%d", ErrInvalid, cols, rows)
	}
	return t.s.send(ctx, StreamMessage{Type: "resize", Cols: cols, Rows: rows})
}

// Wait blocks until the terminal's process exits and returns its exit
// code. The error is not nil only when the stream ended first (then the
// code is -1): the connection was lost, the context ended (the context's
// error), or Close was called (an error matching net.ErrClosed).
func (t *Terminal) Wait() (int, error) { return t.s.wait() }

// Close disconnects from the terminal without ending its process on
// purpose: while a tagged terminal's process runs, PTY with the same Tag
// reattaches to it. It is safe to call more than once.
func (t *Terminal) Close() error { return t.s.close() }
