package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

// StdIO returns the IO of the running process: its standard streams, its
// environment, and its terminal if stdin is one.
func StdIO() IO {
	s := IO{
		Stdin:            os.Stdin,
		Stdout:           os.Stdout,
		Stderr:           os.Stderr,
		StderrIsTerminal: term.IsTerminal(int(os.Stderr.Fd())),
	}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		s.Term = osTTY{in: os.Stdin, out: os.Stdout}
	}
	return s
}

// osTTY is the process's controlling terminal.
type osTTY struct{ in, out *os.File }

func (t osTTY) MakeRaw() (func() error, error) {
	fd := int(t.in.Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, err
	}
	return func() error { return term.Restore(fd, old) }, nil
}

func (t osTTY) Size() (cols, rows int, err error) {
	// stdout may be redirected while stdin is the terminal; try both.
	if cols, rows, err = term.GetSize(int(t.out.Fd())); err == nil {
		return cols, rows, nil
	}
	return term.GetSize(int(t.in.Fd()))
}

// Resizes follows SIGWINCH. Its goroutine ends with ctx.
func (t osTTY) Resizes(ctx context.Context) <-chan struct{} {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGWINCH)
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		defer signal.Stop(sig)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				select {
				case out <- struct{}{}:
				default: // one pending resize is enough: Size reads the latest
				}
			}
		}
	}()
	return out
}
