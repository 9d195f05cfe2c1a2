package envdclient

import (
	"bytes"
	"context"
	"errors"
	"os/user"
	"strings"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
)

func TestRun(t *testing.T) {
	env := newTestEnv(t)
	c := env.client("")
	ctx := testCtx(t)
	me, _ := user.Current()
	for _, tc := range []struct {
		name string
		req  nestbox.ExecRequest
		want nestbox.ExecResult
	}{
		{"stdout", nestbox.ExecRequest{Cmd: []string{"echo", "hello", "world"}},
			nestbox.ExecResult{Stdout: "hello world\n"}},
		{"stderr", nestbox.ExecRequest{Cmd: []string{"sh", "-c", "echo oops >&2"}},
			nestbox.ExecResult{Stderr: "oops\n"}},
		{"both", nestbox.ExecRequest{Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 0"}},
			nestbox.ExecResult{Stdout: "out\n", Stderr: "err\n"}},
		{"non-zero exit", nestbox.ExecRequest{Cmd: []string{"sh", "-c", "exit 3"}},
			nestbox.ExecResult{ExitCode: 3}},
		{"stdin", nestbox.ExecRequest{Cmd: []string{"cat"}, Stdin: []byte("fed through stdin")},
			nestbox.ExecResult{Stdout: "fed through stdin"}},
		{"big stdin", nestbox.ExecRequest{Cmd: []string{"sh", "-c", "wc -c"}, Stdin: bytes.Repeat([]byte("x"), 3<<20)},
			nestbox.ExecResult{Stdout: "3145728\n"}},
		{"no stdin is EOF", nestbox.ExecRequest{Cmd: []string{"cat"}},
			nestbox.ExecResult{}},
		{"env", nestbox.ExecRequest{Cmd: []string{"sh", "-c", `echo "$FOO-$BAR"`}, Env: map[string]string{"FOO": "a b", "BAR": "2"}},
			nestbox.ExecResult{Stdout: "a b-2\n"}},
		{"default cwd", nestbox.ExecRequest{Cmd: []string{"pwd"}},
			nestbox.ExecResult{Stdout: env.workdir + "\n"}},
		{"cwd", nestbox.ExecRequest{Cmd: []string{"pwd"}, Cwd: "/tmp"},
			nestbox.ExecResult{Stdout: "/tmp\n"}},
		{"default user", nestbox.ExecRequest{Cmd: []string{"id", "-un"}},
			nestbox.ExecResult{Stdout: me.Username + "\n"}},
		{"killed by a signal", nestbox.ExecRequest{Cmd: []string{"sh", "-c", "kill -9 $$"}},
			nestbox.ExecResult{ExitCode: -1, Error: "signal: killed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Run(ctx, tc.req)
			if err != nil {
				t.Fatalf("run %q: %v", tc.req.Cmd, err)
			}
			if got.Pid == 0 {
				t.Errorf("run %q: no pid", tc.req.Cmd)
			}
			got.Pid = 0
			if got != tc.want {
				t.Errorf("run %q: got %+v, want %+v", tc.req.Cmd, got, tc.want)
			}
		})
	}
}

func TestRunAsUser(t *testing.T) {
	requireUser(t)
	c := newTestEnv(t).client("")
	got, err := c.Run(testCtx(t), nestbox.ExecRequest{Cmd: []string{"sh", "-c", "id -un; echo $HOME"}, User: "user", Cwd: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "user\n"; !strings.HasPrefix(got.Stdout, want) {
		t.Fatalf("run as user: got %q, want it to start with %q", got.Stdout, want)
	}
}

func TestRunErrors(t *testing.T) {
	c := newTestEnv(t).client("")
	ctx := testCtx(t)
	for _, tc := range []struct {
		name string
		req  nestbox.ExecRequest
		kind error
	}{
		{"no command", nestbox.ExecRequest{}, errdefs.ErrInvalid},
		{"unknown command", nestbox.ExecRequest{Cmd: []string{"no-such-command-xyz"}}, errdefs.ErrNotFound},
		{"missing cwd", nestbox.ExecRequest{Cmd: []string{"true"}, Cwd: "/no/such/dir"}, errdefs.ErrInvalid},
		{"unknown user", nestbox.ExecRequest{Cmd: []string{"true"}, User: "no-such-user-xyz"}, errdefs.ErrUnauthenticated},
		{"negative timeout", nestbox.ExecRequest{Cmd: []string{"true"}, TimeoutSeconds: -1}, errdefs.ErrInvalid},
	} {
		_, err := c.Run(ctx, tc.req)
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: got %v, want an error of kind %q", tc.name, err, tc.kind)
		}
	}
}

func TestRunTimeoutKills(t *testing.T) {
	c := newTestEnv(t).client("")
	ctx := testCtx(t)
	// Were it not killed, sleep would outlast the test's context.
	got, err := c.Run(ctx, nestbox.ExecRequest{Cmd: []string{"sh", "-c", "echo before; exec sleep 600"}, TimeoutSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got.Error != "timed out" || got.ExitCode != -1 || got.Stdout != "before\n" {
		t.Fatalf("got %+v, want exit code -1, error %q and the output from before", got, "timed out")
	}
	eventually(t, "the timed-out process is gone", func() bool {
		ps, err := c.List(ctx)
		return err == nil && len(ps) == 0
	})
}

func TestRunCancelKills(t *testing.T) {
	c := newTestEnv(t).client("")
	ctx := testCtx(t)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// Cancel once the process runs (or, should it never show, after a
		// while: Run then fails the test below).
		defer cancel()
		for range 1500 {
			if ps, err := c.List(ctx); err == nil && len(ps) == 1 {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	_, err := c.Run(runCtx, nestbox.ExecRequest{Cmd: []string{"sleep", "600"}, Tag: "doomed"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run with a cancelled context: got %v, want context.Canceled", err)
	}
	eventually(t, "the abandoned process is killed", func() bool {
		ps, err := c.List(ctx)
		return err == nil && len(ps) == 0
	})
}

func TestRunOutputCap(t *testing.T) {
	env := newTestEnv(t)
	c := New(Config{BaseURL: env.baseURL(testCapsule), MaxOutputBytes: 1000})
	got, err := c.Run(testCtx(t), nestbox.ExecRequest{Cmd: []string{"sh", "-c", "head -c 300000 /dev/zero; echo small >&2"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Stdout) != 1000 || got.Stderr != "small\n" || got.ExitCode != 0 || got.Error == "" {
		t.Fatalf("got %d bytes of stdout, stderr %q, exit %d, error %q; want 1000 bytes, all of stderr, 0 and the cap reported",
			len(got.Stdout), got.Stderr, got.ExitCode, got.Error)
	}
}

func TestRunDeadline(t *testing.T) {
	c := newTestEnv(t).client("")
	ctx := testCtx(t)
	// The caller's deadline is not envd's: the process is killed because
	// Run gives up, and Run says why.
	runCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_, err := c.Run(runCtx, nestbox.ExecRequest{Cmd: []string{"sleep", "600"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("run past the caller's deadline: got %v, want context.DeadlineExceeded", err)
	}
	eventually(t, "the abandoned process is killed", func() bool {
		ps, err := c.List(ctx)
		return err == nil && len(ps) == 0
	})
}
