package envdclient

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
)

// collect reads s to its end and returns the messages' types and outputs.
func collect(t *testing.T, s *Stream) (exit nestbox.StreamMessage, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return exit, out.String(), errOut.String()
		}
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		switch m.Type {
		case "stdout":
			out.Write(m.Data)
		case "stderr":
			errOut.Write(m.Data)
		case "exit":
			exit = m
		default:
			t.Fatalf("unexpected %q message mid-stream: %+v", m.Type, m)
		}
	}
}

// started reads the first message, which must be "started".
func started(t *testing.T, s *Stream) nestbox.StreamMessage {
	t.Helper()
	m, err := s.Recv()
	if err != nil || m.Type != "started" || m.Pid == 0 || m.Pid != s.Pid() {
		t.Fatalf("first message: got %+v, %v; want started with pid %d", m, err, s.Pid())
	}
	return m
}

// recvData reads until a stdout message and returns its data.
func recvData(t *testing.T, s *Stream) string {
	t.Helper()
	m, err := s.Recv()
	if err != nil || m.Type != "stdout" {
		t.Fatalf("got %+v, %v; want stdout", m, err)
	}
	return string(m.Data)
}

func TestStartStreams(t *testing.T) {
	c := newTestEnv(t).client("")
	s, err := c.Start(testCtx(t), nestbox.ExecRequest{Cmd: []string{"sh", "-c", "echo one; echo two >&2; exit 5"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	started(t, s)
	exit, stdout, stderr := collect(t, s)
	if exit.ExitCode != 5 || exit.Error != "" || stdout != "one\n" || stderr != "two\n" {
		t.Fatalf("got exit %+v, stdout %q, stderr %q", exit, stdout, stderr)
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("recv after the end: got %v, want io.EOF", err)
	}
}

func TestReattachAndInput(t *testing.T) {
	env := newTestEnv(t)
	c := env.client("")
	ctx := testCtx(t)
	// cat with stdin left open: it runs until stdin is closed.
	first, err := c.Start(ctx, nestbox.ExecRequest{Cmd: []string{"cat"}, Tag: "echoer"})
	if err != nil {
		t.Fatal(err)
	}
	m := started(t, first)
	if m.Tag != "echoer" {
		t.Fatalf("started: got tag %q, want echoer", m.Tag)
	}
	pid := m.Pid
	first.Close() // the process keeps running

	ps, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []nestbox.Process{{Pid: pid, Tag: "echoer", Cmd: []string{"cat"}, Cwd: env.workdir}}
	if !slices.EqualFunc(ps, want, func(a, b nestbox.Process) bool {
		return a.Pid == b.Pid && a.Tag == b.Tag && slices.Equal(a.Cmd, b.Cmd) && a.Cwd == b.Cwd
	}) {
		t.Fatalf("list: got %+v, want %+v", ps, want)
	}

	byPid, err := c.ConnectPid(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	defer byPid.Close()
	byTag, err := c.ConnectTag(ctx, "echoer")
	if err != nil {
		t.Fatal(err)
	}
	defer byTag.Close()
	for _, s := range []*Stream{byPid, byTag} {
		if m := started(t, s); m.Pid != pid {
			t.Fatalf("reattached to pid %d, want %d", m.Pid, pid)
		}
	}
	if err := c.SendStdin(ctx, pid, []byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Stream{byPid, byTag} {
		if got := recvData(t, s); got != "ping\n" {
			t.Fatalf("follower got %q, want ping", got)
		}
	}
	if err := c.CloseStdin(ctx, pid); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Stream{byPid, byTag} {
		if exit, _, _ := collect(t, s); exit.Type != "exit" || exit.ExitCode != 0 {
			t.Fatalf("after EOF on stdin: got %+v, want exit 0", exit)
		}
	}
	if err := c.SendStdin(ctx, pid, []byte("late")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("stdin to an ended process: got %v, want not found", err)
	}
}

func TestConnectMissing(t *testing.T) {
	c := newTestEnv(t).client("")
	ctx := testCtx(t)
	if _, err := c.ConnectPid(ctx, 999999); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("connect to a missing pid: got %v, want not found", err)
	}
	if _, err := c.ConnectTag(ctx, "nobody"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("connect to a missing tag: got %v, want not found", err)
	}
	if err := c.Signal(ctx, 999999, "SIGTERM"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("signal a missing pid: got %v, want not found", err)
	}
	if err := c.ResizePTY(ctx, 999999, 80, 24); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("resize a missing process: got %v, want not found", err)
	}
	if err := c.Signal(ctx, 1, "SIGHUP"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("signal SIGHUP: got %v, want invalid", err)
	}
}

func TestSignal(t *testing.T) {
	c := newTestEnv(t).client("")
	ctx := testCtx(t)
	for _, tc := range []struct{ sig, status string }{
		{"SIGTERM", "signal: terminated"},
		{"SIGKILL", "signal: killed"},
	} {
		s, err := c.Start(ctx, nestbox.ExecRequest{Cmd: []string{"sleep", "600"}})
		if err != nil {
			t.Fatal(err)
		}
		started(t, s)
		if err := c.Signal(ctx, s.Pid(), tc.sig); err != nil {
			t.Fatalf("signal %s: %v", tc.sig, err)
		}
		exit, _, _ := collect(t, s)
		if exit.ExitCode != -1 || exit.Error != tc.status {
			t.Errorf("after %s: got %+v, want exit code -1 and %q", tc.sig, exit, tc.status)
		}
		s.Close()
	}
}

func TestStartBackgroundAndTimeout(t *testing.T) {
	c := newTestEnv(t).client("")
	ctx := testCtx(t)
	// A background process outlives its stream and has no timeout.
	bg, err := c.Start(ctx, nestbox.ExecRequest{Cmd: []string{"sleep", "600"}, Background: true, Tag: "bg"})
	if err != nil {
		t.Fatal(err)
	}
	pid := started(t, bg).Pid
	bg.Close()
	ps, err := c.List(ctx)
	if err != nil || len(ps) != 1 || ps[0].Pid != pid {
		t.Fatalf("list after closing the background stream: got %+v, %v", ps, err)
	}
	if err := c.Signal(ctx, pid, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the background process is gone", func() bool {
		ps, err := c.List(ctx)
		return err == nil && len(ps) == 0
	})

	// A foreground one is killed at its timeout, and the stream says so.
	fg, err := c.Start(ctx, nestbox.ExecRequest{Cmd: []string{"sleep", "600"}, TimeoutSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fg.Close()
	started(t, fg)
	if exit, _, _ := collect(t, fg); exit.ExitCode != -1 || exit.Error != "timed out" {
		t.Fatalf("at the timeout: got %+v, want exit -1, timed out", exit)
	}
}

func TestCloseInterruptsRecv(t *testing.T) {
	c := newTestEnv(t).client("")
	ctx := testCtx(t)
	s, err := c.Start(ctx, nestbox.ExecRequest{Cmd: []string{"sleep", "600"}, Background: true})
	if err != nil {
		t.Fatal(err)
	}
	started(t, s)
	done := make(chan error, 1)
	go func() {
		_, err := s.Recv()
		done <- err
	}()
	s.Close()
	if err := <-done; err == nil {
		t.Fatal("recv on a closed stream: got a message, want an error")
	}
	if err := c.Signal(ctx, s.Pid(), "SIGKILL"); err != nil {
		t.Fatalf("the process must outlive its stream: %v", err)
	}
}
