package files

import (
	"bytes"
	"compress/gzip"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestDownload(t *testing.T) {
	e := newEnv(t, currentUserName(t), 0)
	dir := t.TempDir()
	content := strings.Repeat("hello world\n", 1000)
	file := filepath.Join(dir, `we "ird" name ü.txt`)
	mustWrite(t, file, content)

	r := e.do(t, "GET", q("path", file), nil, nil)
	if r.status != 200 || string(r.body) != content {
		t.Fatalf("download: got %d, %d bytes", r.status, len(r.body))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if v := r.header.Get("Vary"); v != "Accept-Encoding" {
		t.Errorf("Vary %q", v)
	}
	if r.header.Get("Content-Encoding") != "" {
		t.Errorf("encoded without Accept-Encoding: %q", r.header.Get("Content-Encoding"))
	}
	disp, params, err := mime.ParseMediaType(r.header.Get("Content-Disposition"))
	if err != nil || disp != "inline" || params["filename"] != filepath.Base(file) {
		t.Errorf("Content-Disposition %q: %v %v", r.header.Get("Content-Disposition"), params, err)
	}

	empty := filepath.Join(dir, "empty")
	mustWrite(t, empty, "")
	r = e.do(t, "GET", q("path", empty), nil, nil)
	if r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Length") != "0" {
		t.Errorf("empty file: got %d, %q, Content-Length %q", r.status, r.body, r.header.Get("Content-Length"))
	}

	r = e.do(t, "GET", q("path", file), map[string]string{"Range": "bytes=0-4"}, nil)
	if r.status != http.StatusPartialContent || string(r.body) != "hello" {
		t.Errorf("range: got %d %q", r.status, r.body)
	}

	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		query  []string
		status int
	}{
		{"missing file", []string{"path", filepath.Join(dir, "nope")}, 404},
		{"below a file", []string{"path", file + "/x"}, 404},
		{"directory", []string{"path", dir}, 400},
		{"fifo", []string{"path", fifo}, 400},
		{"no path", nil, 400},
		{"empty path", []string{"path", ""}, 400},
		{"NUL in path", []string{"path", "a\x00b"}, 400},
		{"repeated path", []string{"path", file, "path", empty}, 400},
		{"unknown user", []string{"path", file, "username", "no-such-user-nestbox"}, 401},
	} {
		wantError(t, e.do(t, "GET", q(tc.query...), nil, nil), tc.status, tc.name)
	}
}

func TestDownloadRelativeToHome(t *testing.T) {
	u := requireTestUser(t)
	e := newEnv(t, "root", 0)
	name := "nestbox-dl-" + t.Name()
	mustWrite(t, filepath.Join(u.Home, name), "mine")
	t.Cleanup(func() { os.Remove(filepath.Join(u.Home, name)) })
	if r := e.do(t, "GET", q("path", name, "username", u.Name), nil, nil); r.status != 200 || string(r.body) != "mine" {
		t.Fatalf("relative download: %d %s", r.status, r.body)
	}
	// "..": envd is the sandbox's own agent, not a jail; paths are only
	// cleaned.
	r := e.do(t, "GET", q("path", "../../etc/hostname", "username", u.Name), nil, nil)
	if want, _ := os.ReadFile("/etc/hostname"); r.status != 200 || !bytes.Equal(r.body, want) {
		t.Fatalf("download ../../etc/hostname: %d %q", r.status, r.body)
	}
}

func TestDownloadGzip(t *testing.T) {
	e := newEnv(t, currentUserName(t), 0)
	file := filepath.Join(t.TempDir(), "f")
	content := strings.Repeat("compress me ", 10000)
	mustWrite(t, file, content)

	r := e.do(t, "GET", q("path", file), map[string]string{"Accept-Encoding": "gzip"}, nil)
	if r.status != 200 || r.header.Get("Content-Encoding") != "gzip" || r.header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("gzip download: %d %v", r.status, r.header)
	}
	if len(r.body) >= len(content) {
		t.Errorf("gzip body is %d bytes for %d", len(r.body), len(content))
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || string(got) != content {
		t.Fatalf("gunzip: %d bytes, %v", len(got), err)
	}

	// A range is served on the identity encoding.
	r = e.do(t, "GET", q("path", file), map[string]string{"Accept-Encoding": "gzip", "Range": "bytes=0-7"}, nil)
	if r.status != 206 || string(r.body) != "compress" || r.header.Get("Content-Encoding") != "" {
		t.Errorf("gzip + range: %d %q %q", r.status, r.body, r.header.Get("Content-Encoding"))
	}
	wantError(t, e.do(t, "GET", q("path", file), map[string]string{"Accept-Encoding": "br, identity;q=0"}, nil), 406, "no acceptable encoding")
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		in       string
		gzip, ok bool
	}{
		{"", false, true},
		{"gzip", true, true},
		{"gzip, deflate", true, true},
		{"GZIP;q=0.5", true, true},
		{"x-gzip", true, true},
		{"deflate, br", false, true},
		{"gzip;q=0", false, true},
		{"*", true, true},
		{"*;q=0, identity", false, true},
		{"gzip;q=0.2, identity;q=0.8", false, true},
		{"gzip;q=0.9, identity;q=0.8", true, true},
		{"identity;q=0, gzip;q=0.1", true, true},
		{"br, identity;q=0", false, false},
		{"*;q=0", false, false},
		{"gzip;q=bogus", true, true},
		{" , ;;, =", false, true},
	} {
		got, err := acceptsGzip([]string{tc.in})
		if got != tc.gzip || (err == nil) != tc.ok {
			t.Errorf("acceptsGzip(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.gzip, tc.ok)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t, currentUserName(t), 0)
	for _, m := range []string{"PUT", "DELETE", "PATCH"} {
		r := e.do(t, m, q("path", "/etc/hostname"), nil, nil)
		wantError(t, r, 405, m)
		if r.header.Get("Allow") != "GET, POST" {
			t.Errorf("%s: Allow %q", m, r.header.Get("Allow"))
		}
	}
}
