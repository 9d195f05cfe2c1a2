package process

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/envd/identity"
	"nestbox.dev/internal/envd/settings"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
	"nestbox.dev/internal/testenv"
)

func TestStartOutputAndExit(t *testing.T) {
	h := newHarness(t, Config{})
	tests := []struct {
		name           string
		req            *processpb.StartRequest
		stdout, stderr string
		code           int32
		status         string
	}{
		{"echo", cmd("echo", "hi"), "hi\n", "", 0, "exit status 0"},
		{"non-zero exit", shell("echo out; exit 3"), "out\n", "", 3, "exit status 3"},
		{"stderr", shell("echo oops >&2; exit 1"), "", "oops\n", 1, "exit status 1"},
		{"both streams", shell("echo a; echo b >&2"), "a\n", "b\n", 0, "exit status 0"},
		{"no output", cmd("true"), "", "", 0, "exit status 0"},
		{"killed by a signal", shell("kill -KILL $$"), "", "", -1, "signal: killed"},
		{"args are not split", cmd("printf", "%s|", "a b", "c"), "a b|c|", "", 0, "exit status 0"},
	}
	for _, codec := range codecs {
		for _, tt := range tests {
			t.Run(codec+"/"+tt.name, func(t *testing.T) {
				res, err := h.run(t, codec, tt.req)
				if err != nil {
					t.Fatalf("run %v: %v", tt.req.Process, err)
				}
				if res.stdout.String() != tt.stdout || res.stderr.String() != tt.stderr {
					t.Errorf("stdout %q, stderr %q; want %q, %q for %v", res.stdout.String(), res.stderr.String(), tt.stdout, tt.stderr, tt.req.Process)
				}
				checkEnd(t, tt.name, res.end, tt.code, tt.status)
			})
		}
	}
}

func TestStartInvalid(t *testing.T) {
	h := newHarness(t, Config{})
	tests := []struct {
		name string
		req  *processpb.StartRequest
		hdr  []string
		code connect.Code
	}{
		{"no process config", &processpb.StartRequest{}, nil, connect.CodeInvalidArgument},
		{"empty command", cmd(""), nil, connect.CodeInvalidArgument},
		{"command not on PATH", cmd("nestbox-no-such-command"), nil, connect.CodeNotFound},
		{"missing path", cmd("/no/such/binary"), nil, connect.CodeNotFound},
		{"directory", cmd("/tmp"), nil, connect.CodePermissionDenied}, // a shell says 126 for these two
		{"not executable", cmd("/etc/passwd"), nil, connect.CodePermissionDenied},
		{"NUL in argument", cmd("echo", "a\x00b"), nil, connect.CodeInvalidArgument},
		{"bad env key", &processpb.StartRequest{Process: &processpb.ProcessConfig{Cmd: "true", Envs: map[string]string{"A=B": "c"}}}, nil, connect.CodeInvalidArgument},
		{"missing cwd", &processpb.StartRequest{Process: &processpb.ProcessConfig{Cmd: "true", Cwd: new("/no/such/dir")}}, nil, connect.CodeInvalidArgument},
		{"cwd is a file", &processpb.StartRequest{Process: &processpb.ProcessConfig{Cmd: "true", Cwd: new("/etc/passwd")}}, nil, connect.CodeInvalidArgument},
		{"pty too large", &processpb.StartRequest{Process: &processpb.ProcessConfig{Cmd: "true"}, Pty: &processpb.PTY{Size: &processpb.PTY_Size{Cols: 70000, Rows: 10}}}, nil, connect.CodeInvalidArgument},
		{"unknown user", cmd("true"), []string{"Authorization", basicAuth("nestbox-no-such-user")}, connect.CodeUnauthenticated},
		{"malformed basic auth", cmd("true"), []string{"Authorization", "Basic %%%"}, connect.CodeInvalidArgument},
	}
	for _, codec := range codecs {
		for _, tt := range tests {
			t.Run(codec+"/"+tt.name, func(t *testing.T) {
				st, err := h.start(ctxFor(t), codec, tt.req, tt.hdr...)
				if err == nil {
					_, err = st.next()
					if st.res.pid != 0 {
						t.Errorf("got a start event (pid %d) for %v", st.res.pid, tt.req.Process)
					}
				}
				wantCode(t, fmt.Sprintf("start %v", tt.req.Process), err, tt.code)
			})
		}
	}
	if n := len(h.svc.procs.all()); n != 0 {
		t.Errorf("%d processes left in the table after failed starts", n)
	}
}

func TestStartEnv(t *testing.T) {
	h := newHarness(t, Config{})
	h.settings.Apply(settings.Update{EnvVars: map[string]string{"NB_A": "settings", "NB_B": "settings", "LOGNAME": "settings-logname"}})
	req := shell(`echo "$NB_A|$NB_B|$NB_C|$LOGNAME|$HOME|$PATH|${TERM-unset}"`)
	req.Process.Envs = map[string]string{"NB_B": "call", "NB_C": "call"}
	res, err := h.run(t, "json", req)
	if err != nil {
		t.Fatal(err)
	}
	want := "settings|call|call|settings-logname|" + h.home + "|" + identity.DefaultPath + "|unset\n"
	if got := res.stdout.String(); got != want {
		t.Errorf("env: got %q, want %q", got, want)
	}
}

func TestStartCwd(t *testing.T) {
	sub, err := os.MkdirTemp(mustHome(t), "nestbox-process-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sub) })
	home := mustHome(t)
	tests := []struct {
		name           string
		defaultWorkdir string
		cwd            *string
		want           string
	}{
		{"default is home", "", nil, home},
		{"empty is home", "", new(""), home},
		{"settings default workdir", "/tmp", nil, "/tmp"},
		{"absolute", "/tmp", new("/usr"), "/usr"},
		{"relative to home", "", new(filepath.Base(sub)), sub},
		{"tilde", "/tmp", new("~"), home},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{Settings: settings.New(mustUser(t), tt.defaultWorkdir)})
			req := cmd("pwd")
			req.Process.Cwd = tt.cwd
			res, err := h.run(t, "binary", req)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(res.stdout.String()); got != tt.want {
				t.Errorf("pwd = %q, want %q (default workdir %q, cwd %v)", got, tt.want, tt.defaultWorkdir, tt.cwd)
			}
		})
	}
}

func TestStartAsUser(t *testing.T) {
	testenv.RequireRoot(t)
	u, err := identity.Lookup("nobody")
	if err != nil {
		testenv.Missing(t, "user nobody: "+err.Error())
	}
	h := newHarness(t, Config{})
	req := shell(`id -u; id -g; echo "$HOME $USER"`)
	req.Process.Cwd = new("/tmp") // nobody's home does not exist
	for _, codec := range codecs {
		res, err := h.run(t, codec, req, "Authorization", basicAuth("nobody"))
		if err != nil {
			t.Fatalf("%s: %v", codec, err)
		}
		want := fmt.Sprintf("%d\n%d\n%s nobody\n", u.UID, u.GID, u.Home)
		if got := res.stdout.String(); got != want {
			t.Errorf("%s: as nobody got %q, want %q", codec, got, want)
		}
	}
}

// TestFastExitOutput checks that the output of a process that exits at once
// always arrives before its end.
func TestFastExitOutput(t *testing.T) {
	h := newHarness(t, Config{})
	const runs, workers = 200, 8
	var wg sync.WaitGroup
	errs := make(chan error, runs)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < runs; i += workers {
				res, err := h.run(t, codecs[i%2], cmd("echo", "hi"))
				switch {
				case err != nil:
					errs <- fmt.Errorf("run %d: %w", i, err)
				case res.stdout.String() != "hi\n" || res.end.GetExitCode() != 0:
					errs <- fmt.Errorf("run %d: stdout %q, end %v", i, res.stdout.String(), res.end)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestLargeOutput(t *testing.T) {
	h := newHarness(t, Config{})
	const n = 10_000_000
	for _, codec := range codecs {
		t.Run(codec, func(t *testing.T) {
			res, err := h.run(t, codec, shell("head -c "+strconv.Itoa(n)+" /dev/zero | base64"))
			if err != nil {
				t.Fatal(err)
			}
			checkEnd(t, "base64", res.end, 0, "exit status 0")
			raw, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(res.stdout.String(), "\n", ""))
			if err != nil {
				t.Fatalf("decode %d bytes of output: %v", res.stdout.Len(), err)
			}
			if len(raw) != n || bytes.Count(raw, []byte{0}) != n {
				t.Errorf("got %d decoded bytes, want %d zero bytes", len(raw), n)
			}
		})
	}
}

// TestOutputHeldOpen: a background grandchild keeps stdout open; the end
// event still comes, after the grace period, with the output so far.
func TestOutputHeldOpen(t *testing.T) {
	h := newHarness(t, Config{OutputGrace: 200 * time.Millisecond})
	res, err := h.run(t, "binary", shell("sleep 60 & echo $!"))
	if err != nil {
		t.Fatal(err)
	}
	checkEnd(t, "sh", res.end, 0, "exit status 0")
	pid, err := strconv.Atoi(strings.TrimSpace(res.stdout.String()))
	if err != nil {
		t.Fatalf("stdout %q: %v", res.stdout.String(), err)
	}
	if err := killPID(pid); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
}

func TestKeepalive(t *testing.T) {
	h := newHarness(t, Config{})
	res, err := h.run(t, "json", cmd("sleep", "2"), "Keepalive-Ping-Interval", "1")
	if err != nil {
		t.Fatal(err)
	}
	if res.keepalives == 0 {
		t.Errorf("no keepalive event in 2 s with Keepalive-Ping-Interval: 1")
	}
}

// FuzzSpecOf feeds arbitrary Start requests to the validation that runs
// before any fork: it must never panic, and a rejection must carry a client
// error kind, never internal.
func FuzzSpecOf(f *testing.F) {
	f.Add("echo", "hi", "K", "V", "", uint32(0), uint32(0), true)
	f.Add("", "", "", "", "/no/such", uint32(70000), uint32(1), false)
	f.Add("sh", "a\x00b", "A=B", "x\x00", "~/../..", uint32(1), uint32(70000), true)
	f.Add("./rel", "", "PATH", "", "relative/dir", uint32(0), uint32(0), false)
	s := &Service{cfg: Config{Settings: settings.New(mustUser(f), "")}}
	f.Fuzz(func(t *testing.T, name, arg, key, val, cwd string, cols, rows uint32, withPTY bool) {
		req := &processpb.StartRequest{Process: &processpb.ProcessConfig{Cmd: name, Args: []string{arg}, Envs: map[string]string{key: val}}}
		if cwd != "" {
			req.Process.Cwd = &cwd
		}
		if withPTY {
			req.Pty = &processpb.PTY{Size: &processpb.PTY_Size{Cols: cols, Rows: rows}}
		}
		_, err := s.specOf(http.Header{}, req)
		if code := connect.CodeOf(errdefs.ToConnect(err)); err != nil && code == connect.CodeInternal {
			t.Errorf("specOf(%v) = %v: internal error for a bad request", req, err)
		}
	})
}
