package process

import (
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/processpb"
)

// TestSendSignal signals a shell that waits for a child in its group: both
// must die.
func TestSendSignal(t *testing.T) {
	h := newHarness(t, Config{})
	tests := []struct {
		sig    processpb.Signal
		status string
	}{
		{processpb.Signal_SIGNAL_SIGTERM, "signal: terminated"},
		{processpb.Signal_SIGNAL_SIGKILL, "signal: killed"},
	}
	for _, tt := range tests {
		t.Run(tt.sig.String(), func(t *testing.T) {
			st, err := h.start(ctxFor(t), "json", shell("sleep 100 & echo $!; wait"))
			if err != nil {
				t.Fatal(err)
			}
			pid, err := st.started()
			if err != nil {
				t.Fatal(err)
			}
			if err := st.until(func(r *result) bool { return strings.HasSuffix(r.stdout.String(), "\n") }); err != nil {
				t.Fatal(err)
			}
			child, err := strconv.Atoi(strings.TrimSpace(st.res.stdout.String()))
			if err != nil {
				t.Fatalf("child pid %q: %v", st.res.stdout.String(), err)
			}
			h.signal(t, pid, tt.sig)
			res, err := st.wait()
			if err != nil {
				t.Fatal(err)
			}
			checkEnd(t, tt.sig.String(), res.end, -1, tt.status)
			waitGone(t, child) // the subreaper (this test) reaps it once it dies
		})
	}
}

func TestSendSignalPTY(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := ctxFor(t)
	st, err := h.start(ctx, "binary", &processpb.StartRequest{
		Process: &processpb.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-i"}},
		Pty:     &processpb.PTY{Size: &processpb.PTY_Size{Cols: 80, Rows: 24}},
	})
	if err != nil {
		t.Fatal(err)
	}
	pid, err := st.started()
	if err != nil {
		t.Fatal(err)
	}
	term := &terminal{t: t, h: h, ctx: ctx, st: st, pid: pid}
	// A foreground job runs in a process group of its own.
	term.typeLine("echo C$$E; sleep 100")
	term.expect(`C\d+E`)
	h.signal(t, pid, processpb.Signal_SIGNAL_SIGKILL)
	res, err := st.wait()
	if err != nil {
		t.Fatal(err)
	}
	checkEnd(t, "sh -i", res.end, -1, "signal: killed")
	waitFor(t, "the session of the shell to be empty", func() bool { return len(sessionMembers(int(pid))) == 0 })
}

func TestSendSignalInvalid(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := ctxFor(t)
	st, err := h.start(ctx, "binary", cmd("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := st.started()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  *processpb.SendSignalRequest
		code connect.Code
	}{
		{"unspecified signal", &processpb.SendSignalRequest{Process: byPID(pid)}, connect.CodeInvalidArgument},
		{"unknown signal number", &processpb.SendSignalRequest{Process: byPID(pid), Signal: 2}, connect.CodeInvalidArgument},
		{"unknown pid", &processpb.SendSignalRequest{Process: byPID(1 << 30), Signal: processpb.Signal_SIGNAL_SIGKILL}, connect.CodeNotFound},
		{"unknown tag", &processpb.SendSignalRequest{Process: byTag("nestbox-none"), Signal: processpb.Signal_SIGNAL_SIGKILL}, connect.CodeNotFound},
		{"no selector", &processpb.SendSignalRequest{Signal: processpb.Signal_SIGNAL_SIGKILL}, connect.CodeInvalidArgument},
	}
	for _, tt := range tests {
		for _, codec := range codecs {
			_, err := h.clients[codec].SendSignal(ctx, connect.NewRequest(tt.req))
			wantCode(t, codec+" "+tt.name, err, tt.code)
		}
	}
}
