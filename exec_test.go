package nestbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"nestbox.dev"
)

func TestExecCollects(t *testing.T) {
	var got nestbox.ExecRequest
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/capsules/cap1/exec" {
			writeError(w, http.StatusNotFound, "not_found", r.URL.Path)
			return
		}
		decodeBody(t, r, &got)
		writeJSON(w, http.StatusOK, nestbox.ExecResult{Pid: 7, ExitCode: 3, Stdout: "out\n", Stderr: "err\n"})
	}))
	res, err := c.Capsule("cap1").Exec(context.Background(), []string{"sh", "-c", "exit 3"},
		nestbox.WithEnv(map[string]string{"A": "1"}), nestbox.WithEnv(map[string]string{"B": "2"}),
		nestbox.WithCwd("/tmp"), nestbox.WithUser("root"), nestbox.WithStdin([]byte("in")),
		nestbox.WithTimeout(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	want := nestbox.ExecRequest{
		Cmd: []string{"sh", "-c", "exit 3"}, Env: map[string]string{"A": "1", "B": "2"},
		Cwd: "/tmp", User: "root", Stdin: []byte("in"), TimeoutSeconds: 2,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("server got %+v, want %+v", got, want)
	}
	if res != (nestbox.ExecResult{Pid: 7, ExitCode: 3, Stdout: "out\n", Stderr: "err\n"}) {
		t.Errorf("result = %+v", res)
	}
	if _, err := c.Capsule("cap1").Exec(context.Background(), nil); !errors.Is(err, nestbox.ErrInvalid) {
		t.Errorf("Exec(nil): err = %v, want ErrInvalid", err)
	}
}

func TestStartIsBackground(t *testing.T) {
	var got nestbox.ExecRequest
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		decodeBody(t, r, &got)
		writeJSON(w, http.StatusOK, nestbox.ExecResult{Pid: 42})
	}))
	pid, err := c.Capsule("cap1").Start(context.Background(), []string{"sleep", "60"}, nestbox.WithTag("sleeper"))
	if err != nil {
		t.Fatal(err)
	}
	if pid != 42 || !got.Background || got.Tag != "sleeper" {
		t.Errorf("pid %d, request %+v", pid, got)
	}
}

func TestSignalAndProcesses(t *testing.T) {
	var signalled string
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "POST /v1/capsules/cap1/processes/42/signal":
			var body map[string]string
			decodeBody(t, r, &body)
			signalled = body["signal"]
			w.WriteHeader(http.StatusNoContent)
		case "GET /v1/capsules/cap1/processes":
			writeJSON(w, http.StatusOK, nestbox.ProcessList{Processes: []nestbox.Process{{Pid: 42, Tag: "t", Cmd: []string{"sleep"}}}})
		default:
			writeError(w, http.StatusNotFound, "not_found", r.URL.Path)
		}
	}))
	h := c.Capsule("cap1")
	if err := h.Signal(context.Background(), 42, nestbox.SignalKill); err != nil {
		t.Fatal(err)
	}
	if signalled != "SIGKILL" {
		t.Errorf("server got signal %q", signalled)
	}
	ps, err := h.Processes(context.Background())
	if err != nil || len(ps) != 1 || ps[0].Pid != 42 {
		t.Errorf("Processes = %+v, %v", ps, err)
	}
}

// fakeExecStream is the server side of the exec WebSocket: it starts a
// pretend process that echoes stdin to stdout in upper case, writes a line
// to stderr, and exits with code 3 when stdin is closed, or with -1 on a
// signal.
type fakeExecStream struct {
	t *testing.T

	mu    sync.Mutex
	req   nestbox.ExecRequest
	query string
}

func (f *fakeExecStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/capsules/cap1/exec/stream" {
		writeError(w, http.StatusNotFound, "not_found", "capsule not found")
		return
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		f.t.Errorf("accept: %v", err)
		return
	}
	defer conn.CloseNow()
	ctx := r.Context()
	f.mu.Lock()
	f.query = r.URL.RawQuery
	f.mu.Unlock()
	pid, tag := uint32(9), ""
	if r.URL.RawQuery == "" {
		_, b, err := conn.Read(ctx)
		if err != nil {
			f.t.Errorf("read request: %v", err)
			return
		}
		f.mu.Lock()
		err = json.Unmarshal(b, &f.req)
		tag = f.req.Tag
		f.mu.Unlock()
		if err != nil {
			f.t.Errorf("decode request: %v", err)
			return
		}
	}
	send := func(m nestbox.StreamMessage) {
		b, _ := json.Marshal(m)
		if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
			f.t.Errorf("write %s: %v", m.Type, err)
		}
	}
	send(nestbox.StreamMessage{Type: "started", Pid: pid, Tag: tag})
	send(nestbox.StreamMessage{Type: "stderr", Data: []byte("starting\n")})
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return // the client went away
		}
		var m nestbox.StreamMessage
		if err := json.Unmarshal(b, &m); err != nil {
			f.t.Errorf("decode message: %v", err)
			return
		}
		switch m.Type {
		case "stdin":
			send(nestbox.StreamMessage{Type: "stdout", Data: []byte(strings.ToUpper(string(m.Data)))})
		case "close_stdin":
			send(nestbox.StreamMessage{Type: "exit", ExitCode: 3})
			conn.Close(websocket.StatusNormalClosure, "")
			return
		case "signal":
			if m.Signal == "SIGHUP" { // a message the server cannot act on
				send(nestbox.StreamMessage{Type: "rejected", Code: "invalid_argument", Error: `signal "SIGHUP": want SIGTERM or SIGKILL`})
				continue
			}
			send(nestbox.StreamMessage{Type: "exit", ExitCode: -1, Error: "signal: " + m.Signal})
			conn.Close(websocket.StatusNormalClosure, "")
			return
		}
	}
}

func TestExecStream(t *testing.T) {
	f := &fakeExecStream{t: t}
	c := newTestClient(t, f)
	ctx := context.Background()
	req := nestbox.ExecRequest{Cmd: []string{"upcase"}, Tag: "up"}
	p, err := c.Capsule("cap1").ExecStream(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Pid() != 9 || p.Tag() != "up" {
		t.Errorf("pid %d tag %q, want 9 up", p.Pid(), p.Tag())
	}
	// Big enough to be sent in several messages.
	in := strings.Repeat("hello ", 10000)
	go func() {
		_, _ = io.WriteString(p.Stdin(), in)
		_ = p.Stdin().Close()
	}()
	var stdout, stderr []byte
	var wg sync.WaitGroup
	wg.Go(func() { stdout, _ = io.ReadAll(p.Stdout()) })
	wg.Go(func() { stderr, _ = io.ReadAll(p.Stderr()) })
	code, err := p.Wait()
	wg.Wait()
	if err != nil || code != 3 {
		t.Errorf("Wait = %d, %v; want 3, nil", code, err)
	}
	if string(stdout) != strings.ToUpper(in) {
		t.Errorf("stdout has %d bytes, want %d upper-cased", len(stdout), len(in))
	}
	if string(stderr) != "starting\n" {
		t.Errorf("stderr = %q", stderr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !reflect.DeepEqual(f.req, req) {
		t.Errorf("server got request %+v, want %+v", f.req, req)
	}
}

func TestExecStreamWithOutputAndSignal(t *testing.T) {
	c := newTestClient(t, &fakeExecStream{t: t})
	var stdout, stderr strings.Builder
	p, err := c.Capsule("cap1").ExecStream(context.Background(), nestbox.ExecRequest{Cmd: []string{"x"}},
		nestbox.WithOutput(&stdout, &stderr))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Stdin().Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	// The fake handles messages in order: the echo comes before the exit.
	if err := p.Signal(context.Background(), nestbox.SignalTerm); err != nil {
		t.Fatal(err)
	}
	code, err := p.Wait()
	if err != nil || code != -1 || p.ExitReason() != "signal: SIGTERM" {
		t.Errorf("Wait = %d, %v, reason %q; want -1, nil, signal: SIGTERM", code, err, p.ExitReason())
	}
	if stdout.String() != "ABC" || stderr.String() != "starting\n" {
		t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	if n, _ := p.Stdout().Read(make([]byte, 1)); n != 0 {
		t.Errorf("Stdout() had data despite WithOutput")
	}
}

func TestAttach(t *testing.T) {
	f := &fakeExecStream{t: t}
	c := newTestClient(t, f)
	h := c.Capsule("cap1")
	p, err := h.Attach(context.Background(), 9)
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Stdin().Close()
	if code, err := p.Wait(); code != 3 || err != nil {
		t.Errorf("Wait = %d, %v", code, err)
	}
	f.mu.Lock()
	if f.query != "pid=9" {
		t.Errorf("query %q, want pid=9", f.query)
	}
	f.mu.Unlock()

	p, err = h.AttachTag(context.Background(), "up")
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	if f.query != "tag=up" {
		t.Errorf("query %q, want tag=up", f.query)
	}
	f.mu.Unlock()
	// Close detaches: Wait reports that the stream ended first.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); code != -1 || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Wait after Close = %d, %v; want -1, net.ErrClosed", code, err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestExecStreamRefused(t *testing.T) {
	c := newTestClient(t, &fakeExecStream{t: t})
	_, err := c.Capsule("nope").ExecStream(context.Background(), nestbox.ExecRequest{Cmd: []string{"x"}})
	if !errors.Is(err, nestbox.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

func TestExecStreamContextEnds(t *testing.T) {
	c := newTestClient(t, &fakeExecStream{t: t})
	ctx, cancel := context.WithCancel(context.Background())
	p, err := c.Capsule("cap1").ExecStream(ctx, nestbox.ExecRequest{Cmd: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if code, err := p.Wait(); code != -1 || !errors.Is(err, context.Canceled) {
		t.Errorf("Wait = %d, %v; want -1, context.Canceled", code, err)
	}
	if _, err := io.ReadAll(p.Stdout()); !errors.Is(err, context.Canceled) {
		t.Errorf("reading stdout: %v, want context.Canceled", err)
	}
	_ = p.Close()
}

func TestExecStreamFailsBeforeStart(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		_, _, _ = conn.Read(r.Context())
		b, _ := json.Marshal(nestbox.StreamMessage{Type: "error", Code: "not_found", Error: "no such user: bob"})
		_ = conn.Write(r.Context(), websocket.MessageText, b)
		conn.Close(websocket.StatusNormalClosure, "")
	}))
	_, err := c.Capsule("cap1").ExecStream(context.Background(), nestbox.ExecRequest{Cmd: []string{"id"}, User: "bob"})
	if !errors.Is(err, nestbox.ErrNotFound) || err.Error() != "exec stream: no such user: bob (not_found)" {
		t.Errorf("err = %v, want the server's not_found", err)
	}
}

func TestExecStreamSurvivesRejectedMessage(t *testing.T) {
	c := newTestClient(t, &fakeExecStream{t: t})
	p, err := c.Capsule("cap1").ExecStream(context.Background(), nestbox.ExecRequest{Cmd: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Signal(context.Background(), "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	_ = p.Stdin().Close()
	if code, err := p.Wait(); code != 3 || err != nil {
		t.Errorf("Wait = %d, %v; want 3, nil: a rejected message must not end the stream", code, err)
	}
}
