package process

import (
	"context"
	"fmt"
	"regexp"
	"testing"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/processpb"
)

// terminal drives an interactive shell on a PTY: it types lines and waits
// for patterns in the output after the previous match.
type terminal struct {
	t   *testing.T
	h   *harness
	ctx context.Context
	st  *stream[processpb.StartResponse]
	pid uint32
	off int // pty output before off has been matched
}

func (term *terminal) typeLine(line string) {
	term.t.Helper()
	if err := term.h.input(term.ctx, term.pid, ptyInput(line+"\n")); err != nil {
		term.t.Fatalf("type %q: %v", line, err)
	}
}

func (term *terminal) expect(pattern string) string {
	term.t.Helper()
	re := regexp.MustCompile(pattern)
	var loc []int
	err := term.st.until(func(r *result) bool {
		loc = re.FindIndex(r.pty.Bytes()[term.off:])
		return loc != nil
	})
	if err != nil {
		term.t.Fatalf("waiting for %q: %v (output %q)", pattern, err, term.st.res.pty.String()[term.off:])
	}
	m := term.st.res.pty.String()[term.off+loc[0] : term.off+loc[1]]
	term.off += loc[1]
	return m
}

func TestPTY(t *testing.T) {
	h := newHarness(t, Config{})
	for _, codec := range codecs {
		t.Run(codec, func(t *testing.T) {
			ctx := ctxFor(t)
			st, err := h.start(ctx, codec, &processpb.StartRequest{
				Process: &processpb.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-i"}},
				Pty:     &processpb.PTY{Size: &processpb.PTY_Size{Cols: 100, Rows: 30}},
			})
			if err != nil {
				t.Fatal(err)
			}
			pid, err := st.started()
			if err != nil {
				t.Fatal(err)
			}
			term := &terminal{t: t, h: h, ctx: ctx, st: st, pid: pid}

			// The markers around each answer keep the echo of the typed
			// line from matching.
			term.typeLine("echo X$((6*7))Y")
			term.expect(`X42Y`)
			term.typeLine("echo S$(stty size)E")
			term.expect(`S30 100E`)
			term.typeLine("echo T$(tty)E")
			term.expect(`T/dev/pts/\d+E`)
			term.typeLine("echo V${TERM}E")
			term.expect(`Vxterm-256colorE`)
			// The shell is the session leader with the PTY as its
			// controlling terminal: its sid is its pid.
			term.typeLine("echo P$(cut -d' ' -f6 /proc/$$/stat)E")
			if got, want := term.expect(`P\d+E`), fmt.Sprintf("P%dE", pid); got != want {
				t.Errorf("session of the shell: got %s, want %s", got, want)
			}

			_, err = h.clients[codec].Update(ctx, connect.NewRequest(&processpb.UpdateRequest{
				Process: byPID(pid),
				Pty:     &processpb.PTY{Size: &processpb.PTY_Size{Cols: 120, Rows: 40}},
			}))
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			term.typeLine("echo S$(stty size)E")
			term.expect(`S40 120E`)

			term.typeLine("exit 5")
			res, err := st.wait()
			if err != nil {
				t.Fatal(err)
			}
			checkEnd(t, "sh -i", res.end, 5, "exit status 5")
			if res.stdout.Len()+res.stderr.Len() != 0 {
				t.Errorf("a PTY process produced stdout %q, stderr %q; want only pty events", res.stdout.String(), res.stderr.String())
			}
		})
	}
}

func TestPTYTermFromEnvs(t *testing.T) {
	h := newHarness(t, Config{})
	res, err := h.run(t, "json", &processpb.StartRequest{
		Process: &processpb.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-c", "echo $TERM"}, Envs: map[string]string{"TERM": "dumb"}},
		Pty:     &processpb.PTY{Size: &processpb.PTY_Size{Cols: 80, Rows: 24}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.pty.String(); got != "dumb\r\n" {
		t.Errorf("TERM on the PTY = %q, want %q", got, "dumb\r\n")
	}
}

func TestUpdateInvalid(t *testing.T) {
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
	size := &processpb.PTY{Size: &processpb.PTY_Size{Cols: 10, Rows: 10}}
	tests := []struct {
		name string
		req  *processpb.UpdateRequest
		code connect.Code
	}{
		{"resize a pipe process", &processpb.UpdateRequest{Process: byPID(pid), Pty: size}, connect.CodeInvalidArgument},
		{"unknown pid", &processpb.UpdateRequest{Process: byPID(1 << 30), Pty: size}, connect.CodeNotFound},
		{"no selector", &processpb.UpdateRequest{Pty: size}, connect.CodeInvalidArgument},
	}
	for _, tt := range tests {
		_, err := h.clients["json"].Update(ctx, connect.NewRequest(tt.req))
		wantCode(t, tt.name, err, tt.code)
	}
	// Without a PTY in the request there is nothing to do.
	if _, err := h.clients["json"].Update(ctx, connect.NewRequest(&processpb.UpdateRequest{Process: byPID(pid)})); err != nil {
		t.Errorf("Update without pty: %v", err)
	}
}
