package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nestbox.dev"
)

func TestParseCopyArg(t *testing.T) {
	tests := []struct {
		in   string
		want copyArg
	}{
		{"cap1:/home/user/a.txt", copyArg{capsule: "cap1", path: "/home/user/a.txt"}},
		{"cap1:/", copyArg{capsule: "cap1", path: "/"}},
		{"cap1:rel", copyArg{capsule: "cap1", path: "rel"}}, // rejected by checkCopyArgs
		{"cap1:/a:b", copyArg{capsule: "cap1", path: "/a:b"}},
		{"local.txt", copyArg{path: "local.txt"}},
		{"./a:b", copyArg{path: "./a:b"}},
		{"/tmp/x:y", copyArg{path: "/tmp/x:y"}},
		{":/x", copyArg{path: ":/x"}},
		{"-", copyArg{path: "-"}},
	}
	for _, tt := range tests {
		if got := parseCopyArg(tt.in); got != tt.want {
			t.Errorf("parseCopyArg(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestCheckCopyArgs(t *testing.T) {
	tests := []struct {
		src, dst string
		ok       bool
	}{
		{"a.txt", "cap1:/a.txt", true},
		{"-", "cap1:/a.txt", true},
		{"cap1:/a.txt", "-", true},
		{"cap1:/a.txt", "b.txt", true},
		{"cap1:/a", "cap2:/b", false},
		{"a", "b", false},
		{"a", "cap1:rel/path", false},
		{"cap1:/a", "", false},
	}
	for _, tt := range tests {
		err := checkCopyArgs(parseCopyArg(tt.src), parseCopyArg(tt.dst))
		if (err == nil) != tt.ok {
			t.Errorf("cp %q %q: err = %v, want ok=%v", tt.src, tt.dst, err, tt.ok)
		}
	}
}

func FuzzParseCopyArg(f *testing.F) {
	for _, s := range []string{"cap1:/a", "./a:b", "-", ":", "a:b:c", "/x:y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a := parseCopyArg(s)
		if a.capsule == "" && a.path != s {
			t.Errorf("local %q became path %q", s, a.path)
		}
		if a.capsule != "" && (a.capsule+":"+a.path != s || strings.ContainsAny(a.capsule, ":/")) {
			t.Errorf("parseCopyArg(%q) = %+v does not split at the first colon", s, a)
		}
	})
}

func TestCopyUploadAndDownload(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("capA", nil)
	dir := t.TempDir()
	content := bytes.Repeat([]byte("0123456789"), 10000)
	local := filepath.Join(dir, "data.bin")
	if err := os.WriteFile(local, content, 0o644); err != nil {
		t.Fatal(err)
	}

	// Upload a file, by name and into a directory.
	if res := f.run(t, Capsule, "", "cp", local, "capA:/home/user/data.bin"); res.err != nil {
		t.Fatal(res.err)
	}
	if !bytes.Equal(f.files["capA:/home/user/data.bin"], content) {
		t.Errorf("uploaded %d bytes, want %d", len(f.files["capA:/home/user/data.bin"]), len(content))
	}
	if f.uploadLen[0] != int64(len(content)) {
		t.Errorf("upload Content-Length %d, want %d", f.uploadLen[0], len(content))
	}
	if res := f.run(t, Capsule, "", "cp", local, "capA:/srv/"); res.err != nil {
		t.Fatal(res.err)
	}
	if _, ok := f.files["capA:/srv/data.bin"]; !ok {
		t.Errorf("upload into /srv/ did not write /srv/data.bin: %v", f.files)
	}
	if res := f.run(t, Capsule, "", "cp", local, "capA:/home/user"); res.err != nil {
		t.Fatal(res.err)
	}
	if _, ok := f.files["capA:/home/user/data.bin"]; !ok {
		t.Errorf("upload into the directory /home/user missing")
	}

	// Upload stdin.
	if res := f.run(t, Capsule, "from stdin", "cp", "-", "capA:/tmp/in.txt"); res.err != nil {
		t.Fatal(res.err)
	}
	if got := string(f.files["capA:/tmp/in.txt"]); got != "from stdin" {
		t.Errorf("stdin upload = %q", got)
	}
	if res := f.run(t, Capsule, "x", "cp", "-", "capA:/tmp/"); res.err == nil {
		t.Error("stdin into a directory succeeded")
	}

	// Download to a file, into a directory and to stdout.
	out := filepath.Join(dir, "back.bin")
	if res := f.run(t, Capsule, "", "cp", "capA:/home/user/data.bin", out); res.err != nil {
		t.Fatal(res.err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, content) {
		t.Errorf("downloaded %d bytes, want %d", len(got), len(content))
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if res := f.run(t, Capsule, "", "cp", "capA:/tmp/in.txt", sub); res.err != nil {
		t.Fatal(res.err)
	}
	if got, _ := os.ReadFile(filepath.Join(sub, "in.txt")); string(got) != "from stdin" {
		t.Errorf("download into a directory: %q", got)
	}
	res := f.run(t, Capsule, "", "cp", "capA:/tmp/in.txt", "-")
	if res.err != nil || res.stdout != "from stdin" {
		t.Errorf("download to stdout: %q, %v", res.stdout, res.err)
	}

	// A missing file leaves nothing behind.
	missing := filepath.Join(dir, "missing")
	res = f.run(t, Capsule, "", "cp", "capA:/nope", missing)
	if !errors.Is(res.err, nestbox.ErrNotFound) {
		t.Errorf("download of a missing file: err = %v, want ErrNotFound", res.err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a failed download left %s: %v", missing, err)
	}
}

func TestCopyProgressOnTerminal(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("capA", nil)
	local := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(local, make([]byte, progressMinBytes), 0o644); err != nil {
		t.Fatal(err)
	}
	res := f.runIO(t, Capsule, IO{StderrIsTerminal: true}, "cp", local, "capA:/big")
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !strings.Contains(res.stderr, "8.0 MiB / 8.0 MiB (100%)") {
		t.Errorf("stderr %q shows no progress", res.stderr)
	}
	if f.uploadLen[0] != progressMinBytes {
		t.Errorf("upload Content-Length %d, want %d", f.uploadLen[0], progressMinBytes)
	}
}
