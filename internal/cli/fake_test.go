package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"nestbox.dev"
)

const fakeKey = "nbx_00112233445566778899aabbccddeeff00112233"

// fakeServer is an in-memory control plane with just enough behaviour for
// the verbs: capsules start on the first wait, commands are a few
// pretend programs, files live in a map.
type fakeServer struct {
	t   *testing.T
	url string

	mu          sync.Mutex
	capsules    []*nestbox.Capsule
	created     []nestbox.CreateCapsuleRequest
	files       map[string][]byte // "id:/path"
	uploadLen   []int64           // Content-Length of each upload (-1: chunked)
	keys        []nestbox.APIKey
	execReqs    []nestbox.ExecRequest
	ptyQueries  []string
	ptyResizes  []string
	listQueries []string
	pauses      []nestbox.PauseRequest
	resumes     []nestbox.ResumeRequest
	forks       []nestbox.ForkRequest
	// snapshots are kept by the snapshot routes (fake_snapshot_test.go).
	snapshots     []*nestbox.Snapshot
	snapshotReqs  []nestbox.CreateSnapshotRequest
	poolReqs      []nestbox.TemplatePoolRequest
	snapshotQuery []string
	// auditQueries are the paths and queries of the audit routes
	// (fake_audit_test.go).
	auditQueries []string
	// usage is the answer of GET /v1/capsules/usage (fake_usage_test.go).
	usage        nestbox.UsageReport
	usageQueries []string
}

func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{t: t, files: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/capsules", f.create)
	mux.HandleFunc("GET /v1/capsules", f.list)
	mux.HandleFunc("GET /v1/capsules/{id}", f.get)
	mux.HandleFunc("DELETE /v1/capsules/{id}", f.remove)
	mux.HandleFunc("POST /v1/capsules/{id}/pause", f.pause)
	mux.HandleFunc("POST /v1/capsules/{id}/resume", f.resume)
	mux.HandleFunc("POST /v1/capsules/{id}/fork", f.fork)
	mux.HandleFunc("GET /v1/capsules/{id}/events", f.events)
	mux.HandleFunc("GET /v1/capsules/{id}/metrics", f.metrics)
	mux.HandleFunc("POST /v1/capsules/{id}/exec", f.exec)
	mux.HandleFunc("GET /v1/capsules/{id}/exec/stream", f.execStream)
	mux.HandleFunc("GET /v1/capsules/{id}/pty", f.pty)
	mux.HandleFunc("GET /v1/capsules/{id}/files", f.readFile)
	mux.HandleFunc("PUT /v1/capsules/{id}/files", f.writeFile)
	mux.HandleFunc("GET /v1/capsules/{id}/files/stat", f.stat)
	mux.HandleFunc("POST /v1/keys", f.createKey)
	mux.HandleFunc("GET /v1/keys", f.listKeys)
	mux.HandleFunc("DELETE /v1/keys/{id}", f.deleteKey)
	mux.HandleFunc("GET /v1/templates", f.templates)
	f.snapshotRoutes(mux)
	f.auditRoutes(mux)
	f.usageRoutes(mux)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != fakeKey {
			fakeError(w, http.StatusUnauthorized, "unauthenticated", "invalid API key")
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// addCapsule adds a running capsule.
func (f *fakeServer) addCapsule(id string, metadata map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	created := time.Now().Add(-3 * time.Minute)
	expires := time.Now().Add(2 * time.Minute)
	f.capsules = append(f.capsules, &nestbox.Capsule{
		ID: id, Template: "base", Status: nestbox.StatusRunning, VCPUs: 1, MemoryMB: 512, DiskMB: 5120,
		Metadata: metadata, Internet: true, CreatedAt: created, ExpiresAt: &expires,
	})
}

func fakeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func fakeError(w http.ResponseWriter, status int, code, msg string) {
	fakeJSON(w, status, nestbox.ErrorBody{Error: nestbox.ErrorDetail{Code: code, Message: msg}})
}

// capsule finds the request's capsule or answers not_found. The caller
// holds f.mu.
func (f *fakeServer) capsule(w http.ResponseWriter, r *http.Request) *nestbox.Capsule {
	id := r.PathValue("id")
	for _, c := range f.capsules {
		if c.ID == id {
			return c
		}
	}
	fakeError(w, http.StatusNotFound, "not_found", "capsule "+id+" not found")
	return nil
}

func (f *fakeServer) create(w http.ResponseWriter, r *http.Request) {
	var req nestbox.CreateCapsuleRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fakeError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	if req.Template == "missing" {
		fakeError(w, http.StatusNotFound, "not_found", "template missing not found")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, req)
	// Defaults are resolved as the control plane does: at once, but the
	// disk only when the capsule starts (the host picks it).
	expires := time.Now().Add(time.Duration(cmp.Or(req.TimeoutSeconds, 300)) * time.Second)
	c := &nestbox.Capsule{
		ID: fmt.Sprintf("cap%d", len(f.created)), Template: cmp.Or(req.Template, "base"), Status: nestbox.StatusStarting,
		VCPUs: cmp.Or(req.VCPUs, 1), MemoryMB: cmp.Or(req.MemoryMB, 512), DiskMB: req.DiskMB,
		Metadata: req.Metadata, CreatedAt: time.Now(), ExpiresAt: &expires,
	}
	f.capsules = append(f.capsules, c)
	fakeJSON(w, http.StatusAccepted, c)
}

func (f *fakeServer) list(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	f.listQueries = append(f.listQueries, r.URL.RawQuery)
	var match []nestbox.Capsule
	for _, c := range f.capsules {
		if s := q.Get("status"); s != "" && !strings.Contains(","+s+",", ","+string(c.Status)+",") {
			continue
		}
		ok := true
		for k, v := range q {
			if mk, found := strings.CutPrefix(k, "metadata."); found && c.Metadata[mk] != v[0] {
				ok = false
			}
		}
		if ok {
			match = append(match, *c)
		}
	}
	start, _ := strconv.Atoi(q.Get("cursor"))
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit == 0 {
		limit = 100
	}
	l := nestbox.CapsuleList{Capsules: []nestbox.Capsule{}}
	for i := start; i < len(match) && i < start+limit; i++ {
		l.Capsules = append(l.Capsules, match[i])
	}
	if start+limit < len(match) {
		l.NextCursor = strconv.Itoa(start + limit)
	}
	fakeJSON(w, http.StatusOK, l)
}

func (f *fakeServer) get(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.capsule(w, r)
	if c == nil {
		return
	}
	if r.URL.Query().Has("wait") {
		switch c.Status {
		case nestbox.StatusStarting:
			c.Status = nestbox.StatusRunning
			c.DiskMB = cmp.Or(c.DiskMB, 5120)
			if c.Template == "broken" {
				c.Status, c.Error = nestbox.StatusError, "template broken has no init"
			}
		case nestbox.StatusStopping:
			c.Status = nestbox.StatusStopped
		}
	}
	// A pause or resume ends at the first read after it.
	switch c.Status {
	case nestbox.StatusPausing:
		defer func() { c.Status = nestbox.StatusPaused }()
	case nestbox.StatusResuming:
		defer func() { c.Status = nestbox.StatusRunning }()
	}
	fakeJSON(w, http.StatusOK, c)
}

func (f *fakeServer) remove(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.capsule(w, r); c != nil {
		if !c.Status.Final() {
			c.Status = nestbox.StatusStopping
		}
		fakeJSON(w, http.StatusAccepted, c)
	}
}

func (f *fakeServer) pause(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.capsule(w, r)
	if c == nil {
		return
	}
	var req nestbox.PauseRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fakeError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	f.pauses = append(f.pauses, req)
	if c.Status != nestbox.StatusRunning {
		fakeError(w, http.StatusConflict, "conflict", "capsule "+c.ID+" is "+string(c.Status))
		return
	}
	c.Status = nestbox.StatusPausing
	fakeJSON(w, http.StatusAccepted, c)
}

// fork makes the forks starting (running at the first wait); a count of
// 3 or more has its last fork refused as over the quota.
func (f *fakeServer) fork(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.capsule(w, r)
	if c == nil {
		return
	}
	var req nestbox.ForkRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fakeError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	f.forks = append(f.forks, req)
	if c.Status != nestbox.StatusRunning {
		fakeError(w, http.StatusConflict, "conflict", "capsule "+c.ID+" is "+string(c.Status))
		return
	}
	resp := nestbox.ForkResponse{Source: *c}
	for i := range req.Count {
		if req.Count >= 3 && i == req.Count-1 {
			resp.Forks = append(resp.Forks, nestbox.ForkResult{Error: &nestbox.ErrorDetail{Code: "resource_exhausted", Message: "team quota"}})
			continue
		}
		fc := *c
		fc.ID, fc.Status = fmt.Sprintf("%s-fork%d", c.ID, i+1), nestbox.StatusStarting
		f.capsules = append(f.capsules, &fc)
		resp.Forks = append(resp.Forks, nestbox.ForkResult{Capsule: &fc})
	}
	fakeJSON(w, http.StatusAccepted, resp)
}

func (f *fakeServer) resume(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.capsule(w, r)
	if c == nil {
		return
	}
	var req nestbox.ResumeRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fakeError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	f.resumes = append(f.resumes, req)
	if c.Status != nestbox.StatusPaused {
		fakeError(w, http.StatusConflict, "conflict", "capsule "+c.ID+" is "+string(c.Status)+", not paused")
		return
	}
	c.Status = nestbox.StatusResuming
	fakeJSON(w, http.StatusAccepted, c)
}

func (f *fakeServer) events(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.capsule(w, r); c != nil {
		fakeJSON(w, http.StatusOK, nestbox.CapsuleEventList{Events: []nestbox.CapsuleEvent{
			{CapsuleID: c.ID, To: nestbox.StatusStarting, Reason: "created", At: c.CreatedAt},
			{CapsuleID: c.ID, From: nestbox.StatusStarting, To: nestbox.StatusRunning, Reason: "started", At: c.CreatedAt.Add(time.Second)},
		}})
	}
}

func (f *fakeServer) metrics(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.capsule(w, r); c != nil {
		// The totals are the capsule's sizes, as the platform reports them.
		fakeJSON(w, http.StatusOK, nestbox.Metrics{CPUUsedPct: 12.5, CPUCount: 2, MemoryUsedBytes: 100 << 20, MemoryTotalBytes: uint64(c.MemoryMB) << 20,
			DiskUsedBytes: 48 << 10, DiskTotalBytes: uint64(c.DiskMB) << 20})
	}
}

// runFake runs a pretend program: echo ARGS, cat (stdin to stdout),
// fail (stderr, exit 3).
func runFake(cmd []string, stdin []byte) (stdout, stderr string, code int) {
	switch cmd[0] {
	case "echo":
		return strings.Join(cmd[1:], " ") + "\n", "", 0
	case "cat":
		return string(stdin), "", 0
	case "fail":
		return "", "oops\n", 3
	}
	return "", cmd[0] + ": not found\n", 127
}

func (f *fakeServer) exec(w http.ResponseWriter, r *http.Request) {
	var req nestbox.ExecRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fakeError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.capsule(w, r) == nil {
		return
	}
	f.execReqs = append(f.execReqs, req)
	if req.Cmd[0] == "nosuchprog" {
		fakeJSON(w, http.StatusOK, nestbox.ExecResult{ExitCode: 127, Error: `start process "nosuchprog": executable file not found in $PATH`})
		return
	}
	out, errOut, code := runFake(req.Cmd, req.Stdin)
	fakeJSON(w, http.StatusOK, nestbox.ExecResult{Pid: 10, ExitCode: code, Stdout: out, Stderr: errOut})
}

// execStream runs a pretend program over the WebSocket. "cat" echoes
// stdin messages as they come and exits at close_stdin; "sleep" waits
// for a signal.
func (f *fakeServer) execStream(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	c := f.capsule(w, r)
	f.mu.Unlock()
	if c == nil {
		return
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer conn.CloseNow()
	ctx := r.Context()
	_, b, err := conn.Read(ctx)
	if err != nil {
		return
	}
	var req nestbox.ExecRequest
	if err := json.Unmarshal(b, &req); err != nil {
		f.t.Errorf("exec stream request %q: %v", b, err)
		return
	}
	f.mu.Lock()
	f.execReqs = append(f.execReqs, req)
	f.mu.Unlock()
	send := func(m nestbox.StreamMessage) {
		b, _ := json.Marshal(m)
		_ = conn.Write(ctx, websocket.MessageText, b)
	}
	exit := func(code int, reason string) {
		send(nestbox.StreamMessage{Type: "exit", ExitCode: code, Error: reason})
		conn.Close(websocket.StatusNormalClosure, "")
	}
	// As the control plane answers a program that cannot start.
	for prog, code := range map[string]string{"nosuchprog": "not_found", "/etc/passwd": "permission_denied"} {
		if req.Cmd[0] == prog {
			send(nestbox.StreamMessage{Type: "error", Code: code, Error: `start process "` + prog + `": cannot`})
			conn.Close(websocket.StatusNormalClosure, "")
			return
		}
	}
	send(nestbox.StreamMessage{Type: "started", Pid: 10})
	var stdin bytes.Buffer
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return
		}
		var m nestbox.StreamMessage
		if err := json.Unmarshal(b, &m); err != nil {
			f.t.Errorf("exec stream message %q: %v", b, err)
			return
		}
		switch {
		case m.Type == "signal":
			exit(-1, "signal: "+m.Signal)
			return
		case m.Type == "stdin" && req.Cmd[0] == "cat":
			send(nestbox.StreamMessage{Type: "stdout", Data: m.Data})
		case m.Type == "stdin":
			stdin.Write(m.Data)
		case m.Type == "close_stdin" && req.Cmd[0] == "sleep":
			// keeps sleeping until a signal
		case m.Type == "close_stdin" && req.Cmd[0] == "cat":
			exit(0, "")
			return
		case m.Type == "close_stdin":
			out, errOut, code := runFake(req.Cmd, stdin.Bytes())
			if out != "" {
				send(nestbox.StreamMessage{Type: "stdout", Data: []byte(out)})
			}
			if errOut != "" {
				send(nestbox.StreamMessage{Type: "stderr", Data: []byte(errOut)})
			}
			exit(code, "")
			return
		}
	}
}

// pty is a pretend shell: it echoes keystrokes and exits with the number
// typed after "exit " at a carriage return.
func (f *fakeServer) pty(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	c := f.capsule(w, r)
	f.ptyQueries = append(f.ptyQueries, r.URL.RawQuery)
	f.mu.Unlock()
	if c == nil {
		return
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer conn.CloseNow()
	ctx := r.Context()
	b, _ := json.Marshal(nestbox.StreamMessage{Type: "started", Pid: 11})
	_ = conn.Write(ctx, websocket.MessageText, b)
	_ = conn.Write(ctx, websocket.MessageBinary, []byte("$ "))
	var line []byte
	for {
		typ, b, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if typ == websocket.MessageText {
			var m nestbox.StreamMessage
			_ = json.Unmarshal(b, &m)
			f.mu.Lock()
			f.ptyResizes = append(f.ptyResizes, fmt.Sprintf("%s %dx%d", m.Type, m.Cols, m.Rows))
			f.mu.Unlock()
			continue
		}
		_ = conn.Write(ctx, websocket.MessageBinary, b)
		for _, ch := range b {
			if ch == 0x03 { // Ctrl-C drops the line, as a shell does
				line = line[:0]
				continue
			}
			if ch != '\r' {
				line = append(line, ch)
				continue
			}
			if rest, ok := strings.CutPrefix(string(line), "exit "); ok {
				code, _ := strconv.Atoi(rest)
				b, _ := json.Marshal(nestbox.StreamMessage{Type: "exit", ExitCode: code})
				_ = conn.Write(ctx, websocket.MessageText, b)
				conn.Close(websocket.StatusNormalClosure, "")
				return
			}
			line = line[:0]
		}
	}
}

func (f *fakeServer) readFile(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.capsule(w, r)
	if c == nil {
		return
	}
	p := r.URL.Query().Get("path")
	b, ok := f.files[c.ID+":"+p]
	if !ok {
		fakeError(w, http.StatusNotFound, "not_found", "no such file "+p)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

func (f *fakeServer) writeFile(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("read upload: %v", err)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.capsule(w, r)
	if c == nil {
		return
	}
	p := r.URL.Query().Get("path")
	f.files[c.ID+":"+p] = b
	f.uploadLen = append(f.uploadLen, r.ContentLength)
	fakeJSON(w, http.StatusOK, nestbox.Entry{Name: path.Base(p), Path: p, Type: nestbox.EntryFile, Size: int64(len(b))})
}

func (f *fakeServer) stat(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.capsule(w, r)
	if c == nil {
		return
	}
	p := r.URL.Query().Get("path")
	if _, ok := f.files[c.ID+":"+p]; ok {
		fakeJSON(w, http.StatusOK, nestbox.Entry{Name: path.Base(p), Path: p, Type: nestbox.EntryFile})
		return
	}
	for k := range f.files {
		if strings.HasPrefix(k, c.ID+":"+strings.TrimSuffix(p, "/")+"/") {
			fakeJSON(w, http.StatusOK, nestbox.Entry{Name: path.Base(p), Path: p, Type: nestbox.EntryDir})
			return
		}
	}
	fakeError(w, http.StatusNotFound, "not_found", "no such file "+p)
}

func (f *fakeServer) createKey(w http.ResponseWriter, r *http.Request) {
	var req nestbox.CreateAPIKeyRequest
	_ = json.NewDecoder(r.Body).Decode(&req)
	f.mu.Lock()
	defer f.mu.Unlock()
	k := nestbox.APIKey{ID: fmt.Sprintf("key%d", len(f.keys)+1), Name: req.Name, Prefix: "nbx_abcd", CreatedAt: time.Now()}
	f.keys = append(f.keys, k)
	fakeJSON(w, http.StatusCreated, nestbox.APIKeyCreated{APIKey: k, Key: "nbx_abcdef0123456789abcdef0123456789abcdef"})
}

func (f *fakeServer) listKeys(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fakeJSON(w, http.StatusOK, nestbox.APIKeyList{Keys: f.keys})
}

func (f *fakeServer) deleteKey(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, k := range f.keys {
		if k.ID == r.PathValue("id") {
			f.keys = append(f.keys[:i], f.keys[i+1:]...)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	fakeError(w, http.StatusNotFound, "not_found", "key "+r.PathValue("id")+" not found")
}

func (f *fakeServer) templates(w http.ResponseWriter, r *http.Request) {
	fakeJSON(w, http.StatusOK, nestbox.TemplateList{Templates: []nestbox.Template{
		{Name: "base", Description: "Debian 12 with Python", SizeBytes: 300 << 20},
		{Name: "minimal", Description: "busybox", SizeBytes: 2 << 20},
	}})
}

// result is what a verb printed and returned.
type result struct {
	stdout, stderr string
	err            error
}

// run runs a verb group against the fake with stdin as input. Stdin is not
// a terminal unless stdio.Term is set by the caller through runIO.
func (f *fakeServer) run(t *testing.T, group func(context.Context, []string, IO) error, stdin string, args ...string) result {
	t.Helper()
	return f.runIO(t, group, IO{Stdin: strings.NewReader(stdin)}, args...)
}

func (f *fakeServer) runIO(t *testing.T, group func(context.Context, []string, IO) error, stdio IO, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	stdio.Stdout, stdio.Stderr = &stdout, &stderr
	dataDir := t.TempDir()
	stdio.Getenv = func(k string) string {
		return map[string]string{"NESTBOX_URL": f.url, "NESTBOX_API_KEY": fakeKey, "NESTBOX_DATA_DIR": dataDir}[k]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := group(ctx, args, stdio)
	return result{stdout.String(), stderr.String(), err}
}
