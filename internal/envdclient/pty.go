package envdclient

import (
	"context"
	"fmt"
	"math"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
)

// defaultShell is what StartPTY runs when the request names no command: a
// login shell, as a terminal would.
var defaultShell = []string{"/bin/bash", "-l"}

// PTYRequest is an interactive terminal session. Zero values mean the
// documented defaults.
type PTYRequest struct {
	// Cmd defaults to a login shell, /bin/bash -l.
	Cmd []string
	// Cols and Rows are the terminal size; zero means 80 by 24.
	Cols, Rows int
	// Tag names the session so that ConnectTag finds it again.
	Tag string
	// User and Cwd default to the capsule's default user and their home.
	User, Cwd string
	// Env is added to the user's login environment; TERM defaults to
	// xterm-256color.
	Env map[string]string
}

// StartPTY starts req.Cmd on a new terminal. Its stream carries the
// terminal's output as "stdout" messages of raw bytes (escape sequences
// and all). The session has no timeout: it runs until it exits or is
// signalled, whether or not anyone follows it.
func (c *Client) StartPTY(ctx context.Context, req PTYRequest) (*Stream, error) {
	cmd := req.Cmd
	if len(cmd) == 0 {
		cmd = defaultShell
	}
	if cmd[0] == "" {
		return nil, errdefs.Invalid("start pty: empty command")
	}
	size, err := ptySize(req.Cols, req.Rows)
	if err != nil {
		return nil, fmt.Errorf("start pty %q: %w", cmd[0], err)
	}
	env := map[string]string{"TERM": "xterm-256color"}
	for k, v := range req.Env {
		env[k] = v
	}
	cfg := &processpb.ProcessConfig{Cmd: cmd[0], Args: cmd[1:], Envs: env}
	if req.Cwd != "" {
		cfg.Cwd = &req.Cwd
	}
	sr := &processpb.StartRequest{Process: cfg, Pty: &processpb.PTY{Size: size}}
	if req.Tag != "" {
		sr.Tag = &req.Tag
	}
	return c.start(ctx, sr, req.User, 0)
}

// ResizePTY sets the terminal size of process pid; its foreground job gets
// SIGWINCH.
func (c *Client) ResizePTY(ctx context.Context, pid uint32, cols, rows int) error {
	op := fmt.Sprintf("resize pty of process %d", pid)
	if cols <= 0 || rows <= 0 {
		return fmt.Errorf("%s: %w", op, errdefs.Invalid("size %dx%d: both must be positive", cols, rows))
	}
	size, err := ptySize(cols, rows)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return call(ctx, op, func(ctx context.Context) error {
		_, err := c.proc.Update(ctx, connect.NewRequest(&processpb.UpdateRequest{Process: byPid(pid), Pty: &processpb.PTY{Size: size}}))
		return err
	})
}

// ptySize checks a terminal size; zero leaves envd's default (80x24).
func ptySize(cols, rows int) (*processpb.PTY_Size, error) {
	if cols < 0 || rows < 0 || cols > math.MaxUint16 || rows > math.MaxUint16 {
		return nil, errdefs.Invalid("pty size %dx%d is out of range", cols, rows)
	}
	return &processpb.PTY_Size{Cols: uint32(cols), Rows: uint32(rows)}, nil
}
