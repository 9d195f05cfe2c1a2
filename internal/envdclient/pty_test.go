package envdclient

import (
	"errors"
	"os"
	"strings"
	"testing"

	"nestbox.dev/internal/errdefs"
)

// readUntil reads the terminal's output until it contains want, and
// returns what it read.
func readUntil(t *testing.T, s *Stream, want string) string {
	t.Helper()
	var out strings.Builder
	for !strings.Contains(out.String(), want) {
		m, err := s.Recv()
		if err != nil {
			t.Fatalf("waiting for %q: %v; the terminal showed %q", want, err, out.String())
		}
		if m.Type == "exit" {
			t.Fatalf("waiting for %q: the shell exited (%+v); it showed %q", want, m, out.String())
		}
		out.Write(m.Data)
	}
	return out.String()
}

func TestPTY(t *testing.T) {
	c := newTestEnv(t).client("")
	ctx := testCtx(t)
	req := PTYRequest{Cols: 100, Rows: 30, Tag: "term"}
	if _, err := os.Stat("/bin/bash"); err != nil {
		req.Cmd = []string{"/bin/sh"} // the default is bash -l
	}
	s, err := c.StartPTY(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pid := started(t, s).Pid

	if err := c.SendPTYInput(ctx, pid, []byte("echo $((6*7))\n")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, s, "42")

	if err := c.ResizePTY(ctx, pid, 120, 40); err != nil {
		t.Fatal(err)
	}
	if err := c.SendPTYInput(ctx, pid, []byte("echo TERM=$TERM; stty size\n")); err != nil {
		t.Fatal(err)
	}
	// TERM is printed before the size, so both are in what was read.
	if out := readUntil(t, s, "40 120"); !strings.Contains(out, "TERM=xterm-256color") {
		t.Errorf("the terminal showed %q, want TERM=xterm-256color in it", out)
	}

	// A terminal has no stdin pipe to close or write to.
	if err := c.CloseStdin(ctx, pid); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("close stdin of a pty: got %v, want invalid", err)
	}
	if err := c.SendStdin(ctx, pid, []byte("x")); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("stdin to a pty: got %v, want invalid", err)
	}
	if err := c.ResizePTY(ctx, pid, 0, 10); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("resize to 0 columns: got %v, want invalid", err)
	}

	if err := c.SendPTYInput(ctx, pid, []byte("exit 7\n")); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := s.Recv()
		if err != nil {
			t.Fatalf("waiting for the shell to exit: %v", err)
		}
		if m.Type == "exit" {
			if m.ExitCode != 7 {
				t.Fatalf("shell exit: got %+v, want code 7", m)
			}
			break
		}
	}
}
