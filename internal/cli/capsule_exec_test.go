package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"nestbox.dev"
)

func TestExecStreamsAndPassesExitCode(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("capA", nil)
	tests := []struct {
		args             []string
		stdin            string
		wantOut, wantErr string
		wantCode         int // 0: no error
		wantCmd          []string
	}{
		{[]string{"exec", "capA", "--", "echo", "hello", "-n"}, "", "hello -n\n", "", 0, []string{"echo", "hello", "-n"}},
		{[]string{"exec", "capA", "echo", "-x"}, "", "-x\n", "", 0, []string{"echo", "-x"}},
		{[]string{"exec", "--user", "root", "capA", "--cwd", "/tmp", "--", "fail"}, "", "", "oops\n", 3, []string{"fail"}},
		{[]string{"exec", "capA", "--", "cat"}, "piped input\n", "piped input\n", "", 0, []string{"cat"}},
		{[]string{"exec", "capA", "--", "nosuch"}, "", "", "nosuch: not found\n", 127, []string{"nosuch"}},
	}
	for _, tt := range tests {
		res := f.run(t, Capsule, tt.stdin, tt.args...)
		var ee *ExitError
		switch {
		case tt.wantCode == 0 && res.err != nil:
			t.Errorf("%q: err = %v", tt.args, res.err)
		case tt.wantCode != 0 && (!errors.As(res.err, &ee) || ee.Code != tt.wantCode):
			t.Errorf("%q: err = %v, want ExitError %d", tt.args, res.err, tt.wantCode)
		}
		if res.stdout != tt.wantOut || res.stderr != tt.wantErr {
			t.Errorf("%q: stdout %q stderr %q, want %q %q", tt.args, res.stdout, res.stderr, tt.wantOut, tt.wantErr)
		}
		if got := f.execReqs[len(f.execReqs)-1].Cmd; !reflect.DeepEqual(got, tt.wantCmd) {
			t.Errorf("%q: server ran %q, want %q", tt.args, got, tt.wantCmd)
		}
	}
	if req := f.execReqs[2]; req.User != "root" || req.Cwd != "/tmp" {
		t.Errorf("flags around the ID: request %+v", req)
	}
}

func TestExecStreamsLive(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("capA", nil)
	// `cat` echoes each stdin message at once: the first line must come
	// out before the second goes in.
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan result, 1)
	go func() {
		dataDir := t.TempDir()
		stdio := IO{Stdin: inR, Stdout: outW, Stderr: io.Discard, Getenv: func(k string) string {
			return map[string]string{"NESTBOX_URL": f.url, "NESTBOX_API_KEY": fakeKey, "NESTBOX_DATA_DIR": dataDir}[k]
		}}
		err := Capsule(context.Background(), []string{"exec", "capA", "--", "cat"}, stdio)
		outW.Close()
		done <- result{err: err}
	}()
	buf := make([]byte, 64)
	for _, line := range []string{"one\n", "two\n"} {
		if _, err := io.WriteString(inW, line); err != nil {
			t.Fatal(err)
		}
		n, err := io.ReadAtLeast(outR, buf, len(line))
		if err != nil || string(buf[:n]) != line {
			t.Fatalf("read %q, %v; want %q", buf[:n], err, line)
		}
	}
	inW.Close()
	if res := <-done; res.err != nil {
		t.Fatal(res.err)
	}
}

func TestExecInterruptSignals(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("capA", nil)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr strings.Builder
	stdio := IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr, Getenv: func(k string) string {
		return map[string]string{"NESTBOX_URL": f.url, "NESTBOX_API_KEY": fakeKey, "NESTBOX_DATA_DIR": t.TempDir()}[k]
	}}
	done := make(chan error, 1)
	go func() { done <- Capsule(ctx, []string{"exec", "capA", "--", "sleep"}, stdio) }()
	// Interrupt once the command runs.
	for {
		f.mu.Lock()
		n := len(f.execReqs)
		f.mu.Unlock()
		if n > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("exec returned early: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	err := <-done
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 255 {
		t.Errorf("err = %v, want ExitError 255 for a signalled process", err)
	}
	if !strings.Contains(stderr.String(), "signal: SIGTERM") {
		t.Errorf("stderr %q does not say why the command ended", stderr.String())
	}
}

func TestExecJSON(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("capA", nil)
	res := f.run(t, Capsule, "input", "exec", "--json", "--env", "A=1", "--timeout", "30s", "capA", "--", "cat")
	if res.err != nil {
		t.Fatal(res.err)
	}
	var r nestbox.ExecResult
	if err := json.Unmarshal([]byte(res.stdout), &r); err != nil || r.Stdout != "input" {
		t.Errorf("exec --json printed %q (%v)", res.stdout, err)
	}
	req := f.execReqs[0]
	if string(req.Stdin) != "input" || req.Env["A"] != "1" || req.TimeoutSeconds != 30 {
		t.Errorf("request %+v", req)
	}
	res = f.run(t, Capsule, "", "exec", "--json", "capA", "--", "fail")
	var ee *ExitError
	if !errors.As(res.err, &ee) || ee.Code != 3 {
		t.Errorf("exec --json of a failing command: err = %v, want ExitError 3", res.err)
	}
}

func TestExecUsage(t *testing.T) {
	f := newFakeServer(t)
	for _, args := range [][]string{
		{"exec"},
		{"exec", "capA"},
		{"exec", "capA", "--user", "root", "echo"}, // flags after the ID need --
		{"exec", "capA", "--nope", "--", "echo"},
	} {
		if res := f.run(t, Capsule, "", args...); res.err == nil {
			t.Errorf("%q succeeded", args)
		}
	}
}

// fakeTTY records what shell does to the terminal.
type fakeTTY struct {
	raw, restored bool
	resizes       chan struct{}

	mu         sync.Mutex
	cols, rows int
}

func (t *fakeTTY) setSize(cols, rows int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cols, t.rows = cols, rows
}

func (t *fakeTTY) MakeRaw() (func() error, error) {
	t.raw = true
	return func() error { t.restored = true; return nil }, nil
}

func (t *fakeTTY) Size() (int, int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cols, t.rows, nil
}

func (t *fakeTTY) Resizes(ctx context.Context) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.resizes:
				out <- struct{}{}
			}
		}
	}()
	return out
}

func TestShell(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("capA", nil)
	tty := &fakeTTY{cols: 100, rows: 30, resizes: make(chan struct{})}
	res := f.runIO(t, Capsule, IO{Stdin: strings.NewReader("ls\r\x03exit 4\r"), Term: tty},
		"shell", "capA", "--tag", "main", "--user", "root")
	var ee *ExitError
	if !errors.As(res.err, &ee) || ee.Code != 4 {
		t.Errorf("err = %v, want ExitError 4", res.err)
	}
	if want := "$ ls\r\x03exit 4\r"; res.stdout != want {
		t.Errorf("stdout = %q, want %q", res.stdout, want)
	}
	if !tty.raw || !tty.restored {
		t.Errorf("raw %v restored %v; want both", tty.raw, tty.restored)
	}
	q := f.ptyQueries[0]
	for _, want := range []string{"cols=100", "rows=30", "tag=main", "user=root"} {
		if !strings.Contains(q, want) {
			t.Errorf("pty query %q lacks %s", q, want)
		}
	}
}

func TestShellResizes(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("capA", nil)
	tty := &fakeTTY{cols: 80, rows: 24, resizes: make(chan struct{})}
	inR, inW := io.Pipe()
	done := make(chan result, 1)
	go func() { done <- f.runIO(t, Capsule, IO{Stdin: inR, Term: tty}, "shell", "capA") }()
	tty.setSize(132, 50)
	tty.resizes <- struct{}{} // received once the shell follows resizes
	lastResize := func() string {
		f.mu.Lock()
		defer f.mu.Unlock()
		if n := len(f.ptyResizes); n > 0 {
			return f.ptyResizes[n-1]
		}
		return ""
	}
	deadline := time.Now().Add(10 * time.Second)
	for lastResize() != "resize 132x50" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := lastResize(); got != "resize 132x50" {
		t.Errorf("last resize the server saw: %q, want resize 132x50", got)
	}
	io.WriteString(inW, "exit 0\r")
	res := <-done
	inW.Close()
	if res.err != nil {
		t.Fatal(res.err)
	}
}

func TestShellWithoutTerminal(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("capA", nil)
	res := f.run(t, Capsule, "exit 0\r", "shell", "capA")
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !strings.Contains(f.ptyQueries[0], "cols=80") {
		t.Errorf("pty query %q, want the default size", f.ptyQueries[0])
	}
}

// TestExecCannotStart: a program that is missing or not executable exits
// as in a shell, 127 or 126, with one line on stderr; a missing capsule
// stays an error (exit 1).
func TestExecCannotStart(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("c1", nil)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"exec", "c1", "--", "nosuchprog"}, 127},
		{[]string{"exec", "c1", "--", "/etc/passwd"}, 126},
		{[]string{"exec", "--json", "c1", "--", "nosuchprog"}, 127},
	} {
		res := f.run(t, Capsule, "", tc.args...)
		var exit *ExitError
		if !errors.As(res.err, &exit) || exit.Code != tc.code {
			t.Errorf("%q: err %v, want exit %d", tc.args, res.err, tc.code)
		}
		if lines := strings.Split(strings.TrimSuffix(res.stderr, "\n"), "\n"); len(lines) != 1 || strings.Count(res.stderr, "start process") != 1 {
			t.Errorf("%q: stderr %q, want one line naming the operation once", tc.args, res.stderr)
		}
	}
	res := f.run(t, Capsule, "", "exec", "nope", "--", "nosuchprog")
	var exit *ExitError
	if res.err == nil || errors.As(res.err, &exit) {
		t.Errorf("exec in a missing capsule: %v, want an error, not an exit code", res.err)
	}
}
