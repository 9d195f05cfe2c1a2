package process

// The tests run real processes through a real Connect server (httptest) and
// the generated client. They never run in parallel: a Service's reaper owns
// wait4(-1) for the whole test binary, so only one may be open at a time
// and nothing else may wait for children while it is.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"

	"nestbox.dev/internal/envd/identity"
	"nestbox.dev/internal/envd/settings"
	"nestbox.dev/internal/proto/processpb"
	"nestbox.dev/internal/proto/processpb/processpbconnect"
)

// testTimeout bounds every RPC of a test, so that a bug fails instead of
// hanging.
const testTimeout = 15 * time.Second

type harness struct {
	svc      *Service
	settings *settings.Settings
	// clients by codec: "binary" (protobuf) and "json" (what E2B's SDK uses).
	clients map[string]processpbconnect.ProcessClient
	home    string // the default user's home
}

// codecs lists the codecs in a fixed order for table-driven tests.
var codecs = []string{"binary", "json"}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	if cfg.Settings == nil {
		cfg.Settings = settings.New(mustUser(t), "")
	}
	if cfg.OutputGrace == 0 {
		cfg.OutputGrace = 500 * time.Millisecond
	}
	cfg.Subreaper = true
	svc, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(processpbconnect.NewProcessHandler(svc))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		// Kill what is left and let it end, so that the server's streams
		// finish; then stop the service and the server, in that order.
		for _, p := range svc.procs.all() {
			svc.reaper.signal(int(p.pid), unix.SIGKILL)
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(svc.procs.all()) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := svc.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		srv.Close()
	})
	return &harness{
		svc:      svc,
		settings: cfg.Settings,
		clients: map[string]processpbconnect.ProcessClient{
			"binary": processpbconnect.NewProcessClient(srv.Client(), srv.URL),
			"json":   processpbconnect.NewProcessClient(srv.Client(), srv.URL, connect.WithProtoJSON()),
		},
		home: mustHome(t),
	}
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// result is what one stream delivered.
type result struct {
	pid        uint32
	stdout     bytes.Buffer
	stderr     bytes.Buffer
	pty        bytes.Buffer
	keepalives int
	end        *processpb.ProcessEvent_EndEvent
}

type eventMsg interface {
	GetEvent() *processpb.ProcessEvent
}

// stream wraps a Start or Connect stream and checks the order of events:
// start first, end last, nothing after end.
type stream[T any] struct {
	s   *connect.ServerStreamForClient[T]
	res result
}

// next returns the next event, or nil and the stream's error at its end.
func (st *stream[T]) next() (*processpb.ProcessEvent, error) {
	if !st.s.Receive() {
		if err := st.s.Err(); err != nil {
			return nil, err
		}
		if st.res.end == nil {
			return nil, errors.New("stream ended without an end event")
		}
		return nil, nil
	}
	ev := any(st.s.Msg()).(eventMsg).GetEvent()
	switch {
	case st.res.end != nil:
		return nil, fmt.Errorf("event after the end event: %v", ev)
	case st.res.pid == 0 && ev.GetStart() == nil:
		return nil, fmt.Errorf("first event is not the start event: %v", ev)
	case st.res.pid != 0 && ev.GetStart() != nil:
		return nil, fmt.Errorf("second start event: %v", ev)
	}
	switch v := ev.GetEvent().(type) {
	case *processpb.ProcessEvent_Start:
		st.res.pid = v.Start.GetPid()
	case *processpb.ProcessEvent_Data:
		st.res.stdout.Write(v.Data.GetStdout())
		st.res.stderr.Write(v.Data.GetStderr())
		st.res.pty.Write(v.Data.GetPty())
	case *processpb.ProcessEvent_Keepalive:
		st.res.keepalives++
	case *processpb.ProcessEvent_End:
		st.res.end = v.End
	default:
		return nil, fmt.Errorf("empty event")
	}
	return ev, nil
}

// started reads the start event.
func (st *stream[T]) started() (uint32, error) {
	if _, err := st.next(); err != nil {
		return 0, err
	}
	if st.res.pid == 0 {
		return 0, errors.New("stream ended before the start event")
	}
	return st.res.pid, nil
}

// wait reads until the end event.
func (st *stream[T]) wait() (*result, error) {
	for {
		ev, err := st.next()
		if err != nil {
			return &st.res, err
		}
		if ev == nil || ev.GetEnd() != nil {
			return &st.res, nil
		}
	}
}

// until reads until cond holds for the result so far.
func (st *stream[T]) until(cond func(*result) bool) error {
	for !cond(&st.res) {
		ev, err := st.next()
		if err != nil {
			return err
		}
		if ev == nil || ev.GetEnd() != nil {
			return fmt.Errorf("process ended first: stdout %q, pty %q", st.res.stdout.String(), st.res.pty.String())
		}
	}
	return nil
}

func (h *harness) start(ctx context.Context, codec string, req *processpb.StartRequest, hdr ...string) (*stream[processpb.StartResponse], error) {
	r := connect.NewRequest(req)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header().Set(hdr[i], hdr[i+1])
	}
	s, err := h.clients[codec].Start(ctx, r)
	if err != nil {
		return nil, err
	}
	return &stream[processpb.StartResponse]{s: s}, nil
}

func (h *harness) connect(ctx context.Context, codec string, sel *processpb.ProcessSelector) (*stream[processpb.ConnectResponse], error) {
	s, err := h.clients[codec].Connect(ctx, connect.NewRequest(&processpb.ConnectRequest{Process: sel}))
	if err != nil {
		return nil, err
	}
	return &stream[processpb.ConnectResponse]{s: s}, nil
}

// run starts req and waits for its end.
func (h *harness) run(t testing.TB, codec string, req *processpb.StartRequest, hdr ...string) (*result, error) {
	t.Helper()
	st, err := h.start(ctxFor(t), codec, req, hdr...)
	if err != nil {
		return nil, err
	}
	return st.wait()
}

func (h *harness) signal(t testing.TB, pid uint32, sig processpb.Signal) {
	t.Helper()
	if _, err := h.clients["binary"].SendSignal(ctxFor(t), connect.NewRequest(&processpb.SendSignalRequest{Process: byPID(pid), Signal: sig})); err != nil {
		t.Fatalf("SendSignal(%d, %v): %v", pid, sig, err)
	}
}

func (h *harness) input(ctx context.Context, pid uint32, in *processpb.ProcessInput) error {
	_, err := h.clients["binary"].SendInput(ctx, connect.NewRequest(&processpb.SendInputRequest{Process: byPID(pid), Input: in}))
	return err
}

func cmd(name string, args ...string) *processpb.StartRequest {
	return &processpb.StartRequest{Process: &processpb.ProcessConfig{Cmd: name, Args: args}, Stdin: new(false)}
}

func shell(script string) *processpb.StartRequest { return cmd("/bin/sh", "-c", script) }

func byPID(pid uint32) *processpb.ProcessSelector {
	return &processpb.ProcessSelector{Selector: &processpb.ProcessSelector_Pid{Pid: pid}}
}

func byTag(tag string) *processpb.ProcessSelector {
	return &processpb.ProcessSelector{Selector: &processpb.ProcessSelector_Tag{Tag: tag}}
}

func stdinInput(s string) *processpb.ProcessInput {
	return &processpb.ProcessInput{Input: &processpb.ProcessInput_Stdin{Stdin: []byte(s)}}
}

func ptyInput(s string) *processpb.ProcessInput {
	return &processpb.ProcessInput{Input: &processpb.ProcessInput_Pty{Pty: []byte(s)}}
}

func basicAuth(name string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(name+":"))
}

// checkEnd compares an end event with the expected code and status.
func checkEnd(t testing.TB, what string, end *processpb.ProcessEvent_EndEvent, code int32, status string) {
	t.Helper()
	if end == nil {
		t.Fatalf("%s: no end event", what)
	}
	if end.GetExitCode() != code || end.GetStatus() != status {
		t.Errorf("%s: end = {code %d, status %q}, want {code %d, status %q}", what, end.GetExitCode(), end.GetStatus(), code, status)
	}
	if wantErr := code != 0; (end.Error != nil) != wantErr || (wantErr && end.GetError() != status) {
		t.Errorf("%s: end error = %v, want it set to the status %v", what, end.Error, wantErr)
	}
	if exited := code >= 0; end.GetExited() != exited {
		t.Errorf("%s: exited = %v, want %v", what, end.GetExited(), exited)
	}
}

func wantCode(t testing.TB, what string, err error, code connect.Code) {
	t.Helper()
	if got := connect.CodeOf(err); err == nil || got != code {
		t.Errorf("%s: error %v (code %v), want code %v", what, err, got, code)
	}
}

// sessionMembers lists the processes of session sid.
func sessionMembers(sid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 3 && f[3] == strconv.Itoa(sid) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			out = append(out, pid)
		}
	}
	return out
}

// waitFor polls cond until it holds, failing the test after testTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procState reads the state letter and parent pid of pid from /proc; ok is
// false once the process is gone (reaped).
func procState(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	// The command name may contain spaces; the fields after it do not.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid, true
}

// waitGone waits until pid has been reaped.
func waitGone(t testing.TB, pid int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("process %d to be reaped", pid), func() bool {
		_, _, ok := procState(pid)
		return !ok
	})
}

// mustUser is the name of the user the tests run as, envd's default user.
func mustUser(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatalf("current user: %v", err)
	}
	return u.Username
}

// mustHome is the default user's home as envd sees it.
func mustHome(t testing.TB) string {
	t.Helper()
	u, err := identity.Lookup(mustUser(t))
	if err != nil {
		t.Fatal(err)
	}
	return u.Home
}

func killPID(pid int) error {
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	return nil
}

func closeStdin(ctx context.Context, c processpbconnect.ProcessClient, sel *processpb.ProcessSelector) error {
	_, err := c.CloseStdin(ctx, connect.NewRequest(&processpb.CloseStdinRequest{Process: sel}))
	return err
}
