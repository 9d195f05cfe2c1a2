package cli

import (
	"context"
	"fmt"
	"io"
	"sync"

	"nestbox.dev"
)

// capsuleShell is `nestbox capsule shell`: an interactive terminal. The
// local terminal is in raw mode meanwhile, so Ctrl-C and the like reach
// the capsule as bytes; it is restored on every way out.
func capsuleShell(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "capsule shell", "[flags] ID",
		"Open an interactive terminal in a capsule: a login shell, or --cmd.\n"+
			"With --tag, a later shell with the same tag reattaches to the running one.")
	var opts nestbox.PTYOptions
	c.fs.StringVar(&opts.User, "user", "", "log in as this user (default user)")
	c.fs.StringVar(&opts.Cwd, "cwd", "", "start in this directory (default: the user's home)")
	c.fs.StringVar(&opts.Tag, "tag", "", "name the terminal, or reattach to the running one of this name")
	c.fs.StringVar(&opts.Cmd, "cmd", "", "run this command line instead of a login shell")
	pos, err := c.parse(args, 1, 1)
	if err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	if stdio.Term != nil {
		if cols, rows, err := stdio.Term.Size(); err == nil && cols > 0 && rows > 0 {
			opts.Cols, opts.Rows = cols, rows
		}
	}
	term, err := client.Capsule(pos[0]).PTY(ctx, opts)
	if err != nil {
		return err
	}
	defer term.Close()

	if stdio.Term != nil {
		restore, err := stdio.Term.MakeRaw()
		if err != nil {
			return fmt.Errorf("terminal raw mode: %w", err)
		}
		defer restore()
		resizeCtx, stopResizes := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			for range stdio.Term.Resizes(resizeCtx) {
				if cols, rows, err := stdio.Term.Size(); err == nil && cols > 0 && rows > 0 {
					_ = term.Resize(resizeCtx, cols, rows)
				}
			}
		})
		defer wg.Wait()
		defer stopResizes()
	}
	// Keystrokes. This goroutine is not joined: a read from a terminal
	// cannot be interrupted. It ends with Stdin or when a write fails
	// after the terminal closed. Input that is not a terminal ends as a
	// terminal's does, with Ctrl-D (EOT), so that a shell fed from a pipe
	// or /dev/null exits at its end instead of waiting for more.
	interactive := stdio.Term != nil
	go func() {
		if _, err := io.Copy(term, stdio.stdin()); err == nil && !interactive {
			_, _ = term.Write([]byte{0x04})
		}
	}()

	// Reading ends at io.EOF after the exit, or with the stream's error,
	// which Wait reports; only a failed write is reported here.
	out := &readRecorder{r: term}
	if _, err := io.Copy(stdio.Stdout, out); err != nil && out.err == nil {
		return fmt.Errorf("write terminal output: %w", err)
	}
	code, err := term.Wait()
	switch {
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return err
	}
	return exitError(code)
}

// readRecorder remembers the error its reader returned.
type readRecorder struct {
	r   io.Reader
	err error
}

func (r *readRecorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}
