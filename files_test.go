package nestbox_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"nestbox.dev"
)

// onceReader yields its chunks one by one; it fails the test if read
// again after its end (a body buffered, then re-read) and, after the first
// chunk, waits until the server has seen it: an upload that is buffered
// before sending never gets there.
type onceReader struct {
	t      *testing.T
	chunks [][]byte
	seen   <-chan struct{} // closed by the server at the first chunk
	ended  bool
	closed bool
}

func (r *onceReader) Read(p []byte) (int, error) {
	if r.ended {
		r.t.Error("reader read again after its end")
		return 0, errors.New("read twice")
	}
	if len(r.chunks) == 0 {
		r.ended = true
		return 0, io.EOF
	}
	if len(r.chunks) == 1 && r.seen != nil {
		select {
		case <-r.seen:
		case <-time.After(10 * time.Second):
			r.t.Error("server saw nothing of the first chunk: the upload is not streamed")
			return 0, errors.New("not streamed")
		}
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	if len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

func (r *onceReader) Close() error { r.closed = true; return nil }

// fakeFiles stores files in memory.
type fakeFiles struct {
	t     *testing.T
	first chan struct{} // closed when an upload's first bytes arrive

	mu       sync.Mutex
	files    map[string][]byte
	length   int64 // Content-Length of the last upload (-1: chunked)
	user     string
	removed  []string
	mkdir    string
	listPath string
	depth    string
}

func (f *fakeFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := r.URL.Query().Get("path")
	switch r.Method + " " + r.URL.Path {
	case "PUT /v1/capsules/cap1/files":
		f.length, f.user = r.ContentLength, r.URL.Query().Get("user")
		var buf bytes.Buffer
		b := make([]byte, 32<<10)
		for {
			n, err := r.Body.Read(b)
			if n > 0 && buf.Len() == 0 && f.first != nil {
				close(f.first)
			}
			buf.Write(b[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				f.t.Errorf("read upload: %v", err)
				return
			}
		}
		f.files[path] = buf.Bytes()
		writeJSON(w, http.StatusOK, nestbox.Entry{Name: filepath.Base(path), Path: path, Type: nestbox.EntryFile, Size: int64(buf.Len())})
	case "GET /v1/capsules/cap1/files":
		b, ok := f.files[path]
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", "no file "+path)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(b)
	case "DELETE /v1/capsules/cap1/files":
		f.removed = append(f.removed, path)
		w.WriteHeader(http.StatusNoContent)
	case "GET /v1/capsules/cap1/files/stat":
		writeJSON(w, http.StatusOK, nestbox.Entry{Path: path, Type: nestbox.EntryDir})
	case "GET /v1/capsules/cap1/files/list":
		f.listPath, f.depth = path, r.URL.Query().Get("depth")
		writeJSON(w, http.StatusOK, nestbox.EntryList{Entries: []nestbox.Entry{{Name: "a"}, {Name: "b"}}})
	case "POST /v1/capsules/cap1/files/mkdir":
		var req nestbox.MakeDirRequest
		decodeBody(f.t, r, &req)
		f.mkdir = req.Path
		writeJSON(w, http.StatusOK, nestbox.Entry{Path: req.Path, Type: nestbox.EntryDir})
	default:
		writeError(w, http.StatusNotFound, "not_found", r.URL.Path)
	}
}

func TestWriteFileStreams(t *testing.T) {
	f := &fakeFiles{t: t, files: map[string][]byte{}, first: make(chan struct{})}
	c := newTestClient(t, f)
	first, second := bytes.Repeat([]byte("a"), 100<<10), bytes.Repeat([]byte("b"), 1<<20)
	r := &onceReader{t: t, chunks: [][]byte{first, second}, seen: f.first}
	e, err := c.Capsule("cap1").WriteFile(context.Background(), "/home/user/big", r, nestbox.AsUser("root"))
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	want := append(append([]byte{}, first...), second...)
	if !bytes.Equal(f.files["/home/user/big"], want) {
		t.Errorf("server got %d bytes, want %d", len(f.files["/home/user/big"]), len(want))
	}
	if e.Size != int64(len(want)) || e.Path != "/home/user/big" {
		t.Errorf("entry = %+v", e)
	}
	if f.length != -1 || f.user != "root" {
		t.Errorf("Content-Length %d user %q; want chunked (-1) and root", f.length, f.user)
	}
	if r.closed {
		t.Error("WriteFile closed the caller's reader")
	}
}

func TestWriteFileSendsKnownLength(t *testing.T) {
	f := &fakeFiles{t: t, files: map[string][]byte{}}
	c := newTestClient(t, f)
	h := c.Capsule("cap1")
	ctx := context.Background()
	local := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(local, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(local)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.Seek(4, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		r          io.Reader
		opts       []nestbox.FileOption
		wantLength int64
		wantBody   string
	}{
		{"strings.Reader", strings.NewReader("hello"), nil, 5, "hello"},
		{"empty", strings.NewReader(""), nil, 0, ""},
		{"os.File after Seek", file, nil, 6, "456789"},
		{"WithSize", io.MultiReader(strings.NewReader("ab"), strings.NewReader("c")), []nestbox.FileOption{nestbox.WithSize(3)}, 3, "abc"},
	}
	for _, tt := range tests {
		if _, err := h.WriteFile(ctx, "/f", tt.r, tt.opts...); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		f.mu.Lock()
		if f.length != tt.wantLength || string(f.files["/f"]) != tt.wantBody {
			t.Errorf("%s: server saw Content-Length %d body %q, want %d %q", tt.name, f.length, f.files["/f"], tt.wantLength, tt.wantBody)
		}
		f.mu.Unlock()
	}
	if _, err := file.Stat(); err != nil {
		t.Errorf("WriteFile closed the *os.File: %v", err)
	}
}

func TestReadFileAndTree(t *testing.T) {
	f := &fakeFiles{t: t, files: map[string][]byte{"/etc/hostname": []byte("capsule\n")}}
	c := newTestClient(t, f)
	h := c.Capsule("cap1")
	ctx := context.Background()

	r, err := h.ReadFile(ctx, "/etc/hostname")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(b) != "capsule\n" || r.Size() != 8 {
		t.Errorf("ReadFile = %q (size %d), %v", b, r.Size(), err)
	}
	if _, err := h.ReadFile(ctx, "/nope"); !errors.Is(err, nestbox.ErrNotFound) {
		t.Errorf("ReadFile(/nope): err = %v, want ErrNotFound", err)
	}

	entries, err := h.ListDir(ctx, "/home", 2)
	if err != nil || len(entries) != 2 || f.listPath != "/home" || f.depth != "2" {
		t.Errorf("ListDir = %+v, %v; server saw path %q depth %q", entries, err, f.listPath, f.depth)
	}
	if e, err := h.Stat(ctx, "/home"); err != nil || e.Type != nestbox.EntryDir {
		t.Errorf("Stat = %+v, %v", e, err)
	}
	if _, err := h.MakeDir(ctx, "/a/b"); err != nil || f.mkdir != "/a/b" {
		t.Errorf("MakeDir: %v; server saw %q", err, f.mkdir)
	}
	if err := h.Remove(ctx, "/a"); err != nil || len(f.removed) != 1 || f.removed[0] != "/a" {
		t.Errorf("Remove: %v; server saw %q", err, f.removed)
	}
}
