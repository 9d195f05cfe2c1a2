package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/filesystempb"
	"nestbox.dev/internal/proto/filesystempb/filesystempbconnect"
	"nestbox.dev/internal/proto/processpb"
	"nestbox.dev/internal/proto/processpb/processpbconnect"
)

// agentProxy stands in for a host agent's port proxy
// (/proxy/{id}/{port}/...): it records every request that reaches it, as
// the capsule's server would see it, and serves a small fake envd on port
// 49983 (processes print Output on stdout; files are empty).
type agentProxy struct {
	url string

	// mu guards the fields below.
	mu   sync.Mutex
	seen []seenRequest
	// output is what every process the fake envd starts prints, on stdout
	// and on stderr.
	output []byte
	// entered, if not nil, is sent a value when a process starts; hold, if
	// not nil, keeps every process from ending until it is closed.
	entered chan struct{}
	hold    chan struct{}
}

// setOutput sets what processes print; hold and entered as on agentProxy.
func (p *agentProxy) setOutput(out []byte, hold, entered chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.output, p.hold, p.entered = out, hold, entered
}

// seenRequest is one request that reached a capsule.
type seenRequest struct {
	Capsule, Port, Path string
	Header              http.Header
}

func newAgentProxy(t *testing.T) *agentProxy {
	t.Helper()
	p := &agentProxy{output: []byte("hi\n")}
	envd := http.NewServeMux()
	envd.Handle(processpbconnect.NewProcessHandler(fakeProcess{p}))
	envd.Handle(filesystempbconnect.NewFilesystemHandler(fakeFilesystem{}))
	envd.HandleFunc("GET /files", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("content")) })
	envd.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	envd.HandleFunc("POST /files", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`[{"name":"f","path":"/f","type":"file"}]`))
	})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, "/proxy/")
		id, rest, _ := strings.Cut(rest, "/")
		port, rest, _ := strings.Cut(rest, "/")
		if !ok || id == "" || port == "" {
			http.Error(w, "not a proxy path", http.StatusNotFound)
			return
		}
		p.mu.Lock()
		p.seen = append(p.seen, seenRequest{id, port, "/" + rest, r.Header.Clone()})
		p.mu.Unlock()
		if port != "49983" {
			w.Write([]byte("port " + port))
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = "/"+rest, ""
		envd.ServeHTTP(w, r2)
	}))
	t.Cleanup(ts.Close)
	p.url = ts.URL
	return p
}

// requests returns and forgets the requests seen so far.
func (p *agentProxy) requests() []seenRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.seen
	p.seen = nil
	return s
}

type fakeProcess struct{ p *agentProxy }

func (f fakeProcess) List(context.Context, *connect.Request[processpb.ListRequest]) (*connect.Response[processpb.ListResponse], error) {
	return connect.NewResponse(&processpb.ListResponse{}), nil
}

func (f fakeProcess) Connect(context.Context, *connect.Request[processpb.ConnectRequest], *connect.ServerStream[processpb.ConnectResponse]) error {
	return connect.NewError(connect.CodeNotFound, nil)
}

func (f fakeProcess) Start(ctx context.Context, req *connect.Request[processpb.StartRequest], st *connect.ServerStream[processpb.StartResponse]) error {
	send := func(ev *processpb.ProcessEvent) error { return st.Send(&processpb.StartResponse{Event: ev}) }
	// As envd answers a program that is missing or cannot be executed.
	switch req.Msg.GetProcess().GetCmd() {
	case "nosuchprog":
		return errdefs.ToConnect(errdefs.NotFound("executable file not found in $PATH"))
	case "/etc/passwd":
		return errdefs.ToConnect(fmt.Errorf("permission denied: %w", errdefs.ErrPermission))
	}
	if err := send(&processpb.ProcessEvent{Event: &processpb.ProcessEvent_Start{Start: &processpb.ProcessEvent_StartEvent{Pid: 7}}}); err != nil {
		return err
	}
	f.p.mu.Lock()
	out, hold, entered := bytes.Clone(f.p.output), f.p.hold, f.p.entered
	f.p.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	for len(out) > 0 {
		n := min(len(out), 32<<10)
		data := &processpb.ProcessEvent_DataEvent{Output: &processpb.ProcessEvent_DataEvent_Stdout{Stdout: out[:n]}}
		if err := send(&processpb.ProcessEvent{Event: &processpb.ProcessEvent_Data{Data: data}}); err != nil {
			return err
		}
		data = &processpb.ProcessEvent_DataEvent{Output: &processpb.ProcessEvent_DataEvent_Stderr{Stderr: out[:n]}}
		if err := send(&processpb.ProcessEvent{Event: &processpb.ProcessEvent_Data{Data: data}}); err != nil {
			return err
		}
		out = out[n:]
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return send(&processpb.ProcessEvent{Event: &processpb.ProcessEvent_End{End: &processpb.ProcessEvent_EndEvent{Exited: true, Status: "exit status 0"}}})
}

func (f fakeProcess) Update(context.Context, *connect.Request[processpb.UpdateRequest]) (*connect.Response[processpb.UpdateResponse], error) {
	return connect.NewResponse(&processpb.UpdateResponse{}), nil
}

func (f fakeProcess) StreamInput(context.Context, *connect.ClientStream[processpb.StreamInputRequest]) (*connect.Response[processpb.StreamInputResponse], error) {
	return nil, connect.NewError(connect.CodeUnimplemented, nil)
}

func (f fakeProcess) SendInput(context.Context, *connect.Request[processpb.SendInputRequest]) (*connect.Response[processpb.SendInputResponse], error) {
	return connect.NewResponse(&processpb.SendInputResponse{}), nil
}

func (f fakeProcess) SendSignal(context.Context, *connect.Request[processpb.SendSignalRequest]) (*connect.Response[processpb.SendSignalResponse], error) {
	return connect.NewResponse(&processpb.SendSignalResponse{}), nil
}

func (f fakeProcess) CloseStdin(context.Context, *connect.Request[processpb.CloseStdinRequest]) (*connect.Response[processpb.CloseStdinResponse], error) {
	return connect.NewResponse(&processpb.CloseStdinResponse{}), nil
}

// fakeFilesystem knows one file, /f; everything else is a directory.
type fakeFilesystem struct {
	filesystempbconnect.UnimplementedFilesystemHandler
}

func entry(path string) *filesystempb.EntryInfo {
	return &filesystempb.EntryInfo{Name: strings.TrimPrefix(path, "/"), Path: path, Type: filesystempb.FileType_FILE_TYPE_FILE}
}

func (fakeFilesystem) Stat(_ context.Context, req *connect.Request[filesystempb.StatRequest]) (*connect.Response[filesystempb.StatResponse], error) {
	return connect.NewResponse(&filesystempb.StatResponse{Entry: entry(req.Msg.GetPath())}), nil
}

func (fakeFilesystem) ListDir(context.Context, *connect.Request[filesystempb.ListDirRequest]) (*connect.Response[filesystempb.ListDirResponse], error) {
	return connect.NewResponse(&filesystempb.ListDirResponse{Entries: []*filesystempb.EntryInfo{entry("/f")}}), nil
}

func (fakeFilesystem) MakeDir(_ context.Context, req *connect.Request[filesystempb.MakeDirRequest]) (*connect.Response[filesystempb.MakeDirResponse], error) {
	e := entry(req.Msg.GetPath())
	e.Type = filesystempb.FileType_FILE_TYPE_DIRECTORY
	return connect.NewResponse(&filesystempb.MakeDirResponse{Entry: e}), nil
}

func (fakeFilesystem) Remove(context.Context, *connect.Request[filesystempb.RemoveRequest]) (*connect.Response[filesystempb.RemoveResponse], error) {
	return connect.NewResponse(&filesystempb.RemoveResponse{}), nil
}
