package process

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/processpb"
)

func TestStdin(t *testing.T) {
	h := newHarness(t, Config{})
	tests := []struct {
		name  string
		stdin *bool
	}{
		{"absent keeps stdin open", nil},
		{"true", new(true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxFor(t)
			req := cmd("cat")
			req.Stdin = tt.stdin
			st, err := h.start(ctx, "json", req)
			if err != nil {
				t.Fatal(err)
			}
			pid, err := st.started()
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range []string{"abc", "", "def"} {
				if err := h.input(ctx, pid, stdinInput(in)); err != nil {
					t.Fatalf("SendInput(%q): %v", in, err)
				}
			}
			if err := closeStdin(ctx, h.clients["json"], byPID(pid)); err != nil {
				t.Fatalf("CloseStdin: %v", err)
			}
			res, err := st.wait()
			if err != nil {
				t.Fatal(err)
			}
			if got := res.stdout.String(); got != "abcdef" {
				t.Errorf("cat echoed %q, want %q (stdin %v)", got, "abcdef", tt.stdin)
			}
			checkEnd(t, "cat", res.end, 0, "exit status 0")
		})
	}

	t.Run("false closes stdin", func(t *testing.T) {
		res, err := h.run(t, "json", cmd("cat")) // cmd sets stdin false
		if err != nil {
			t.Fatal(err)
		}
		checkEnd(t, "cat", res.end, 0, "exit status 0")
		if res.stdout.Len() != 0 {
			t.Errorf("cat with closed stdin wrote %q", res.stdout.String())
		}
	})

	for _, stdin := range []bool{false, true} {
		t.Run(fmt.Sprintf("input to closed stdin (stdin %v)", stdin), func(t *testing.T) {
			ctx := ctxFor(t)
			req := cmd("sleep", "30")
			req.Stdin = &stdin
			st, err := h.start(ctx, "binary", req)
			if err != nil {
				t.Fatal(err)
			}
			pid, err := st.started()
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // closing a closed stdin is fine
				if err := closeStdin(ctx, h.clients["binary"], byPID(pid)); err != nil {
					t.Fatalf("CloseStdin: %v", err)
				}
			}
			wantCode(t, "SendInput to a closed stdin", h.input(ctx, pid, stdinInput("x")), connect.CodeFailedPrecondition)
			h.signal(t, pid, processpb.Signal_SIGNAL_SIGKILL)
			if _, err := st.wait(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLargeInput sends 1 MiB in one SendInput while cat echoes it back.
func TestLargeInput(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := ctxFor(t)
	req := cmd("cat")
	req.Stdin = new(true)
	st, err := h.start(ctx, "binary", req)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := st.started()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := st.wait()
		done <- err
	}()
	in := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	if err := h.input(ctx, pid, &processpb.ProcessInput{Input: &processpb.ProcessInput_Stdin{Stdin: in}}); err != nil {
		t.Fatalf("SendInput of %d bytes: %v", len(in), err)
	}
	if err := closeStdin(ctx, h.clients["binary"], byPID(pid)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st.res.stdout.Bytes(), in) {
		t.Errorf("cat echoed %d bytes, want the %d sent", st.res.stdout.Len(), len(in))
	}
}

func TestStreamInput(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := ctxFor(t)
	req := cmd("cat")
	req.Stdin = new(true)
	st, err := h.start(ctx, "binary", req)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := st.started()
	if err != nil {
		t.Fatal(err)
	}

	in := h.clients["binary"].StreamInput(ctx)
	msgs := []*processpb.StreamInputRequest{
		{Event: &processpb.StreamInputRequest_Start{Start: &processpb.StreamInputRequest_StartEvent{Process: byPID(pid)}}},
		{Event: &processpb.StreamInputRequest_Data{Data: &processpb.StreamInputRequest_DataEvent{Input: stdinInput("a")}}},
		{Event: &processpb.StreamInputRequest_Keepalive{Keepalive: &processpb.StreamInputRequest_KeepAlive{}}},
		{Event: &processpb.StreamInputRequest_Data{Data: &processpb.StreamInputRequest_DataEvent{Input: stdinInput("b")}}},
		{Event: &processpb.StreamInputRequest_Data{Data: &processpb.StreamInputRequest_DataEvent{Input: stdinInput("c")}}},
	}
	for _, m := range msgs {
		if err := in.Send(m); err != nil {
			t.Fatalf("send %v: %v", m, err)
		}
	}
	if _, err := in.CloseAndReceive(); err != nil {
		t.Fatalf("StreamInput: %v", err)
	}
	if err := closeStdin(ctx, h.clients["binary"], byPID(pid)); err != nil {
		t.Fatal(err)
	}
	res, err := st.wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := res.stdout.String(); got != "abc" {
		t.Errorf("cat echoed %q, want %q", got, "abc")
	}

	bad := []struct {
		name string
		msgs []*processpb.StreamInputRequest
		code connect.Code
	}{
		{"data before start", msgs[1:2], connect.CodeInvalidArgument},
		{"unknown pid", []*processpb.StreamInputRequest{{Event: &processpb.StreamInputRequest_Start{Start: &processpb.StreamInputRequest_StartEvent{Process: byPID(1 << 30)}}}}, connect.CodeNotFound},
		{"no start", nil, connect.CodeInvalidArgument},
		{"empty event", []*processpb.StreamInputRequest{{}}, connect.CodeInvalidArgument},
	}
	for _, tt := range bad {
		in := h.clients["binary"].StreamInput(ctx)
		for _, m := range tt.msgs {
			in.Send(m) // an early server error surfaces in CloseAndReceive
		}
		_, err := in.CloseAndReceive()
		wantCode(t, "StreamInput "+tt.name, err, tt.code)
	}
}

func TestInputInvalid(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := ctxFor(t)
	pipe, err := h.start(ctx, "binary", cmd("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	pipePID, err := pipe.started()
	if err != nil {
		t.Fatal(err)
	}
	term, err := h.start(ctx, "binary", &processpb.StartRequest{Process: &processpb.ProcessConfig{Cmd: "sleep", Args: []string{"30"}}, Pty: &processpb.PTY{}})
	if err != nil {
		t.Fatal(err)
	}
	ptyPID, err := term.started()
	if err != nil {
		t.Fatal(err)
	}

	c := h.clients["json"]
	tests := []struct {
		name string
		err  error
		code connect.Code
	}{
		{"pty input to a pipe process", h.input(ctx, pipePID, ptyInput("x")), connect.CodeInvalidArgument},
		{"stdin input to a pty process", h.input(ctx, ptyPID, stdinInput("x")), connect.CodeInvalidArgument},
		{"no input", h.input(ctx, pipePID, nil), connect.CodeInvalidArgument},
		{"unknown pid", h.input(ctx, 1<<30, stdinInput("x")), connect.CodeNotFound},
		{"no selector", h.input(ctx, 0, stdinInput("x")), connect.CodeNotFound},
		{"close stdin of a pty", closeStdin(ctx, c, byPID(ptyPID)), connect.CodeInvalidArgument},
		{"close stdin of unknown tag", closeStdin(ctx, c, byTag("nestbox-none")), connect.CodeNotFound},
		{"close stdin without selector", closeStdin(ctx, c, nil), connect.CodeInvalidArgument},
	}
	for _, tt := range tests {
		wantCode(t, tt.name, tt.err, tt.code)
		if tt.err != nil && !strings.Contains(tt.err.Error(), " ") {
			t.Errorf("%s: unclear message %q", tt.name, tt.err)
		}
	}
}
