package files

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/envd/filesystem"
	"nestbox.dev/internal/envd/settings"
	"nestbox.dev/internal/proto/filesystempb"
	"nestbox.dev/internal/proto/filesystempb/filesystempbconnect"
	"nestbox.dev/internal/testenv"
)

const octet = "application/octet-stream"

func TestUploadOctetStream(t *testing.T) {
	u := requireTestUser(t)
	e := newEnv(t, u.Name, 0)
	dir := t.TempDir()
	target := filepath.Join(dir, "new", "parents", "f.txt")

	r := e.do(t, "POST", q("path", target), map[string]string{"Content-Type": octet}, strings.NewReader("hello"))
	got := wantUploaded(t, r, "octet upload")
	if len(got) != 1 || got[0].Name != "f.txt" || got[0].Type != "file" || got[0].Path != target || got[0].Metadata != nil {
		t.Fatalf("answer: %+v", got)
	}
	if readFile(t, target) != "hello" {
		t.Fatal("content differs")
	}
	for _, p := range []string{target, filepath.Dir(target), filepath.Join(dir, "new")} {
		if uid := ownerOf(t, p); uid != u.UID {
			t.Errorf("%s owned by %d, want %s (%d)", p, uid, u.Name, u.UID)
		}
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o644 {
		t.Errorf("new file mode %v, want 0644", fi.Mode())
	}
	if names := dirNames(t, filepath.Dir(target)); !slices.Equal(names, []string{"f.txt"}) {
		t.Errorf("directory holds %v", names)
	}

	// Overwrite: content replaced, mode kept, empty body allowed.
	if err := os.Chmod(target, 0o600); err != nil {
		t.Fatal(err)
	}
	wantUploaded(t, e.do(t, "POST", q("path", target), map[string]string{"Content-Type": octet}, strings.NewReader("")), "empty overwrite")
	if readFile(t, target) != "" {
		t.Fatal("overwrite kept old content")
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o600 {
		t.Errorf("overwritten file mode %v, want 0600 kept", fi.Mode())
	}

	wantError(t, e.do(t, "POST", nil, map[string]string{"Content-Type": octet}, strings.NewReader("x")), 400, "octet without path")
	wantError(t, e.do(t, "POST", q("path", target), map[string]string{"Content-Type": "text/plain"}, strings.NewReader("x")), 400, "text/plain")
	wantError(t, e.do(t, "POST", q("path", target), nil, strings.NewReader("x")), 400, "no content type")
	wantError(t, e.do(t, "POST", q("path", target), map[string]string{"Content-Type": octet, "Content-Encoding": "br"}, strings.NewReader("x")), 400, "brotli")
}

func TestUploadRelativeAndTraversal(t *testing.T) {
	u := requireTestUser(t)
	e := newEnv(t, u.Name, 0)
	name := "nestbox-up-" + t.Name()
	t.Cleanup(func() { os.RemoveAll(filepath.Join(u.Home, name)) })

	got := wantUploaded(t, e.do(t, "POST", q("path", name+"/a.txt"), map[string]string{"Content-Type": octet}, strings.NewReader("a")), "relative upload")
	if want := filepath.Join(u.Home, name, "a.txt"); got[0].Path != want {
		t.Fatalf("relative path resolved to %s, want %s", got[0].Path, want)
	}
	// ".." is cleaned, not refused: the sandbox is the boundary, and
	// envd writes wherever its user asks, like E2B's.
	got = wantUploaded(t, e.do(t, "POST", q("path", name+"/x/../../"+name+"/b.txt"), map[string]string{"Content-Type": octet}, strings.NewReader("b")), "dot-dot upload")
	if want := filepath.Join(u.Home, name, "b.txt"); got[0].Path != want || readFile(t, want) != "b" {
		t.Fatalf("dot-dot path resolved to %s, want %s", got[0].Path, want)
	}
	if _, err := os.Stat(filepath.Join(u.Home, name, "x")); !os.IsNotExist(err) {
		t.Errorf("the cleaned-away directory x was created: %v", err)
	}
	wantError(t, e.do(t, "POST", q("path", "a\x00b"), map[string]string{"Content-Type": octet}, strings.NewReader("x")), 400, "NUL in path")
	body, ct := multipartBody(t, filePart{filename: "a\x00b", content: "x"})
	wantError(t, e.do(t, "POST", nil, map[string]string{"Content-Type": ct}, body), 400, "NUL in filename")
}

func TestUploadGzip(t *testing.T) {
	e := newEnv(t, currentUserName(t), 0)
	dir := t.TempDir()
	content := strings.Repeat("zip ", 5000)

	target := filepath.Join(dir, "raw")
	r := e.do(t, "POST", q("path", target), map[string]string{"Content-Type": octet, "Content-Encoding": "gzip"}, bytes.NewReader(gz(t, []byte(content))))
	wantUploaded(t, r, "gzip octet upload")
	if readFile(t, target) != content {
		t.Fatal("gzip octet upload: content differs")
	}

	body, ct := multipartBody(t, filePart{filename: filepath.Join(dir, "mp"), content: content})
	r = e.do(t, "POST", nil, map[string]string{"Content-Type": ct, "Content-Encoding": "gzip"}, bytes.NewReader(gz(t, body.Bytes())))
	wantUploaded(t, r, "gzip multipart upload")
	if readFile(t, filepath.Join(dir, "mp")) != content {
		t.Fatal("gzip multipart upload: content differs")
	}
}

func TestUploadInvalidGzip(t *testing.T) {
	e := newEnv(t, currentUserName(t), 0)
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing")
	mustWrite(t, existing, "keep me")
	valid := gz(t, bytes.Repeat([]byte("data"), 100000))
	corrupt := slices.Clone(valid)
	corrupt[len(corrupt)/2] ^= 0xff
	withGarbage := append(slices.Clone(valid), "garbage"...)

	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"not gzip", []byte("plain text, not gzip")},
		{"empty", nil},
		{"truncated", valid[:len(valid)/2]},
		{"corrupt", corrupt},
		{"trailing garbage", withGarbage},
	} {
		for _, target := range []string{filepath.Join(dir, "new-"+strings.ReplaceAll(tc.name, " ", "-")), existing} {
			r := e.do(t, "POST", q("path", target), map[string]string{"Content-Type": octet, "Content-Encoding": "gzip"}, bytes.NewReader(tc.body))
			wantError(t, r, 400, tc.name)
		}
		body, ct := multipartBody(t, filePart{filename: filepath.Join(dir, "mp"), content: "x"})
		b := body.Bytes()
		if tc.body != nil {
			b = tc.body
		}
		wantError(t, e.do(t, "POST", nil, map[string]string{"Content-Type": ct, "Content-Encoding": "gzip"}, bytes.NewReader(b)), 400, tc.name+" multipart")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"existing"}) {
		t.Errorf("failed uploads left %v", names)
	}
	if readFile(t, existing) != "keep me" {
		t.Error("a failed upload changed the existing file")
	}
}

func TestUploadMultipart(t *testing.T) {
	u := requireTestUser(t)
	e := newEnv(t, u.Name, 0)
	dir := t.TempDir()

	// One part, with the path parameter (the SDK's files.write).
	target := filepath.Join(dir, "one.txt")
	body, ct := multipartBody(t, filePart{filename: target, content: "one"})
	got := wantUploaded(t, e.do(t, "POST", q("path", target), map[string]string{"Content-Type": ct}, body), "single part")
	if len(got) != 1 || got[0].Path != target || got[0].Name != "one.txt" || got[0].Type != "file" || readFile(t, target) != "one" {
		t.Fatalf("single part: %+v", got)
	}
	// The path parameter wins over the filename.
	body, ct = multipartBody(t, filePart{filename: "ignored.txt", content: "two"})
	wantUploaded(t, e.do(t, "POST", q("path", target), map[string]string{"Content-Type": ct}, body), "path over filename")
	if readFile(t, target) != "two" {
		t.Error("path parameter not used")
	}

	// Twenty parts in nested directories, named by their filenames, some
	// relative to the user's home, plus a field that is not a file.
	name := "nestbox-mp-" + t.Name()
	t.Cleanup(func() { os.RemoveAll(filepath.Join(u.Home, name)) })
	var parts []filePart
	want := map[string]string{}
	for i := range 20 {
		var p, abs string
		if i%2 == 0 {
			p = filepath.Join(dir, fmt.Sprintf("d%d", i%3), fmt.Sprintf("e%d", i%4), fmt.Sprintf("f%02d.txt", i))
			abs = p
		} else {
			p = fmt.Sprintf("%s/d%d/f%02d.txt", name, i%3, i)
			abs = filepath.Join(u.Home, p)
		}
		parts = append(parts, filePart{filename: p, content: fmt.Sprintf("content %d", i)})
		want[abs] = fmt.Sprintf("content %d", i)
		if i == 5 {
			parts = append(parts, filePart{field: "comment", content: "not a file"})
		}
	}
	body, ct = multipartBody(t, parts...)
	got = wantUploaded(t, e.do(t, "POST", nil, map[string]string{"Content-Type": ct}, body), "20 parts")
	if len(got) != 20 {
		t.Fatalf("20 parts: answer has %d entries", len(got))
	}
	for i, g := range got {
		if _, ok := want[g.Path]; !ok || g.Name != filepath.Base(g.Path) || g.Type != "file" {
			t.Errorf("entry %d: %+v", i, g)
		}
	}
	for p, content := range want {
		if readFile(t, p) != content {
			t.Errorf("%s: wrong content", p)
		}
		if uid := ownerOf(t, p); uid != u.UID {
			t.Errorf("%s owned by %d, want %d", p, uid, u.UID)
		}
		if uid := ownerOf(t, filepath.Dir(p)); uid != u.UID {
			t.Errorf("%s owned by %d, want %d", filepath.Dir(p), uid, u.UID)
		}
	}

	// undici escapes '"' in filenames as %22.
	body, ct = multipartBody(t, filePart{filename: filepath.Join(dir, "q%22uote.txt"), content: "q"})
	wantUploaded(t, e.do(t, "POST", nil, map[string]string{"Content-Type": ct}, body), "escaped quote")
	if readFile(t, filepath.Join(dir, `q"uote.txt`)) != "q" {
		t.Error("%22 in a filename not decoded")
	}
}

func TestUploadMultipartErrors(t *testing.T) {
	e := newEnv(t, currentUserName(t), 0)
	dir := t.TempDir()
	two, twoCT := multipartBody(t, filePart{filename: filepath.Join(dir, "a"), content: "a"}, filePart{filename: filepath.Join(dir, "b"), content: "b"})
	dup, dupCT := multipartBody(t, filePart{filename: filepath.Join(dir, "a"), content: "a"}, filePart{filename: filepath.Join(dir, "a"), content: "b"})
	noFile, noFileCT := multipartBody(t, filePart{field: "other", filename: filepath.Join(dir, "a"), content: "a"})
	noName, noNameCT := multipartBody(t, filePart{content: "a"})
	for _, tc := range []struct {
		name  string
		query []string
		ct    string
		body  io.Reader
	}{
		{"path with two parts", []string{"path", filepath.Join(dir, "x")}, twoCT, two},
		{"same target twice", nil, dupCT, dup},
		{"no file part", nil, noFileCT, noFile},
		{"part without filename", nil, noNameCT, noName},
		{"no boundary", nil, "multipart/form-data", strings.NewReader("x")},
		{"wrong boundary", nil, "multipart/form-data; boundary=nope", strings.NewReader("--other\r\n\r\nx\r\n--other--\r\n")},
		{"truncated", nil, twoCT, strings.NewReader(two.String()[:two.Len()-20])},
		{"bad content type", nil, "multipart/form-data; boundary=\"unterminated", strings.NewReader("x")},
	} {
		wantError(t, e.do(t, "POST", q(tc.query...), map[string]string{"Content-Type": tc.ct}, tc.body), 400, tc.name)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("failed uploads left %v", names)
	}
}

func TestUploadDirectoryTarget(t *testing.T) {
	e := newEnv(t, currentUserName(t), 0)
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "file"), "x")
	wantError(t, e.do(t, "POST", q("path", dir), map[string]string{"Content-Type": octet}, strings.NewReader("x")), 400, "directory target")
	wantError(t, e.do(t, "POST", q("path", filepath.Join(dir, "file", "below")), map[string]string{"Content-Type": octet}, strings.NewReader("x")), 400, "parent is a file")
	body, ct := multipartBody(t, filePart{filename: dir, content: "x"})
	wantError(t, e.do(t, "POST", nil, map[string]string{"Content-Type": ct}, body), 400, "directory as filename")
	if names := dirNames(t, dir); !slices.Equal(names, []string{"file"}) {
		t.Errorf("failed uploads left %v", names)
	}
}

func TestUploadThroughSymlink(t *testing.T) {
	e := newEnv(t, currentUserName(t), 0)
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	mustWrite(t, real, "old")
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	got := wantUploaded(t, e.do(t, "POST", q("path", filepath.Join(dir, "link")), map[string]string{"Content-Type": octet}, strings.NewReader("new")), "via symlink")
	if got[0].Path != filepath.Join(dir, "link") || readFile(t, real) != "new" {
		t.Fatalf("upload through a symlink: %+v, real=%q", got, readFile(t, real))
	}
	if fi, err := os.Lstat(filepath.Join(dir, "link")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced: %v", err)
	}
}

func TestUploadMetadata(t *testing.T) {
	e := newEnv(t, currentUserName(t), 0)
	dir := t.TempDir()
	target := filepath.Join(dir, "m.txt")
	want := map[string]string{"author": "mish", "purpose": "upload"}
	hdr := map[string]string{"Content-Type": octet, "X-Metadata-Author": "mish", "x-metadata-purpose": "upload"}

	got := wantUploaded(t, e.do(t, "POST", q("path", target), hdr, strings.NewReader("x")), "octet with metadata")
	if !maps.Equal(got[0].Metadata, want) {
		t.Errorf("answer metadata: got %v, want %v", got[0].Metadata, want)
	}
	if entry, err := filesystem.Entry(target); err != nil || !maps.Equal(entry.GetMetadata(), want) {
		t.Errorf("stored metadata: %v, %v", entry.GetMetadata(), err)
	}

	// Every file of a multipart upload gets it.
	body, ct := multipartBody(t, filePart{filename: filepath.Join(dir, "a"), content: "a"}, filePart{filename: filepath.Join(dir, "b"), content: "b"})
	got = wantUploaded(t, e.do(t, "POST", nil, map[string]string{"Content-Type": ct, "X-Metadata-Author": "mish", "X-Metadata-Purpose": "upload"}, body), "multipart with metadata")
	for _, g := range got {
		if md, _ := filesystem.Metadata(g.Path); !maps.Equal(g.Metadata, want) || !maps.Equal(md, want) {
			t.Errorf("%s: answer %v, stored %v", g.Path, g.Metadata, md)
		}
	}

	// Overwriting without metadata clears it, and the answer says so.
	r := e.do(t, "POST", q("path", target), map[string]string{"Content-Type": octet}, strings.NewReader("y"))
	if got := wantUploaded(t, r, "overwrite"); got[0].Metadata != nil || bytes.Contains(r.body, []byte("metadata")) {
		t.Errorf("overwrite without metadata: %s", r.body)
	}
	if md, _ := filesystem.Metadata(target); md != nil {
		t.Errorf("stale metadata kept: %v", md)
	}

	for name, h := range map[string]map[string]string{
		"key too long":  {"X-Metadata-" + strings.Repeat("k", filesystem.MaxMetadataKeyBytes+1): "v"},
		"too long":      {"X-Metadata-K": strings.Repeat("v", filesystem.MaxMetadataBytes)},
		"value not UTF": {"X-Metadata-K": "\xff"},
	} {
		h["Content-Type"] = octet
		wantError(t, e.do(t, "POST", q("path", filepath.Join(dir, "bad")), h, strings.NewReader("x")), 400, name)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad")); !os.IsNotExist(err) {
		t.Errorf("upload with invalid metadata wrote the file: %v", err)
	}
}

func TestUploadTooLarge(t *testing.T) {
	const limit = 2048
	e := newEnv(t, currentUserName(t), limit)
	dir := t.TempDir()
	big := bytes.Repeat([]byte("x"), 4*limit)

	wantUploaded(t, e.do(t, "POST", q("path", filepath.Join(dir, "ok")), map[string]string{"Content-Type": octet}, bytes.NewReader(big[:limit])), "at the limit")
	// Content-Length says it all.
	wantError(t, e.do(t, "POST", q("path", filepath.Join(dir, "a")), map[string]string{"Content-Type": octet}, bytes.NewReader(big)), 413, "declared too large")
	// Chunked: the length is only known by reading.
	wantError(t, e.do(t, "POST", q("path", filepath.Join(dir, "b")), map[string]string{"Content-Type": octet}, io.MultiReader(bytes.NewReader(big))), 413, "chunked too large")
	body, ct := multipartBody(t, filePart{filename: filepath.Join(dir, "c"), content: string(big)})
	wantError(t, e.do(t, "POST", nil, map[string]string{"Content-Type": ct}, io.MultiReader(body)), 413, "multipart too large")
	// A small gzip body that decompresses past the limit.
	bomb := gz(t, bytes.Repeat([]byte{0}, 1<<20))
	if len(bomb) > limit {
		t.Fatalf("the gzip bomb is %d bytes", len(bomb))
	}
	wantError(t, e.do(t, "POST", q("path", filepath.Join(dir, "d")), map[string]string{"Content-Type": octet, "Content-Encoding": "gzip"}, bytes.NewReader(bomb)), 413, "gzip bomb")
	if names := dirNames(t, dir); !slices.Equal(names, []string{"ok"}) {
		t.Errorf("failed uploads left %v", names)
	}
}

func TestUploadNoSpace(t *testing.T) {
	testenv.RequireRoot(t)
	e := newEnv(t, "root", 0)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		testenv.Missing(t, "cannot mount a tmpfs: "+string(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	big := bytes.Repeat([]byte("x"), 2<<20)
	wantError(t, e.do(t, "POST", q("path", filepath.Join(dir, "big")), map[string]string{"Content-Type": octet}, bytes.NewReader(big)), 507, "disk full")
	body, ct := multipartBody(t, filePart{filename: filepath.Join(dir, "small"), content: "x"}, filePart{filename: filepath.Join(dir, "big"), content: string(big)})
	wantError(t, e.do(t, "POST", nil, map[string]string{"Content-Type": ct}, body), 507, "disk full multipart")
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("failed uploads left %v", names)
	}
}

// TestUploadWatchEvents checks what a watcher sees of an upload: the
// target created and written, as with E2B's envd, and nothing of the
// temporary file.
func TestUploadWatchEvents(t *testing.T) {
	e := newEnv(t, currentUserName(t), 0)
	fs, err := filesystem.New(filesystem.Config{Settings: settings.New(currentUserName(t), "")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	mux := http.NewServeMux()
	mux.Handle(filesystempbconnect.NewFilesystemHandler(fs))
	srv := newServer(t, mux)
	c := filesystempbconnect.NewFilesystemClient(http.DefaultClient, srv, connect.WithProtoJSON())

	dir := t.TempDir()
	// The directory exists before the watch: a directory created by the
	// upload itself is watched only once its CREATE event is handled,
	// which may be after the file in it was written.
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := c.WatchDir(ctx, connect.NewRequest(&filesystempb.WatchDirRequest{Path: dir, Recursive: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !st.Receive() || st.Msg().GetStart() == nil {
		t.Fatalf("no start event: %v", st.Err())
	}
	var seen []string
	waitFor := func(want string) {
		t.Helper()
		for !slices.Contains(seen, want) {
			if !st.Receive() {
				t.Fatalf("stream ended waiting for %q (seen %v): %v", want, seen, st.Err())
			}
			if ev := st.Msg().GetFilesystem(); ev != nil {
				seen = append(seen, ev.GetType().String()+" "+ev.GetName())
			}
		}
	}
	target := filepath.Join(dir, "sub", "f.txt")
	wantUploaded(t, e.do(t, "POST", q("path", target), map[string]string{"Content-Type": octet}, strings.NewReader("one")), "first upload")
	waitFor("EVENT_TYPE_CREATE sub/f.txt")
	waitFor("EVENT_TYPE_WRITE sub/f.txt")
	seen = nil
	wantUploaded(t, e.do(t, "POST", q("path", target), map[string]string{"Content-Type": octet}, strings.NewReader("two")), "overwrite")
	waitFor("EVENT_TYPE_WRITE sub/f.txt")
	// In a directory the upload creates, at least the file's creation.
	wantUploaded(t, e.do(t, "POST", q("path", filepath.Join(dir, "new", "g.txt")), map[string]string{"Content-Type": octet}, strings.NewReader("g")), "new dir")
	waitFor("EVENT_TYPE_CREATE new/g.txt")
	for _, s := range seen {
		if strings.Contains(s, filesystem.UploadTempPrefix) {
			t.Errorf("watcher saw the temporary file: %v", seen)
		}
	}
}
