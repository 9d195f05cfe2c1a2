package envdclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"testing"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
)

func TestUploadDownload(t *testing.T) {
	env := newTestEnv(t)
	c := env.client("")
	ctx := testCtx(t)
	const size = 5<<20 + 123
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(env.workdir, "deep", "er", "blob.bin")

	e, err := c.Upload(ctx, path, "", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "blob.bin" || e.Path != path || e.Type != nestbox.EntryFile || e.Size != size {
		t.Fatalf("upload entry: got %+v, want file %s of %d bytes", e, path, size)
	}

	body, n, err := c.Download(ctx, path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if n != size {
		t.Errorf("download size: got %d, want %d", n, size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, body); err != nil {
		t.Fatal(err)
	}
	if got, want := h.Sum(nil), sha256.Sum256(data); !bytes.Equal(got, want[:]) {
		t.Fatalf("downloaded content differs from the upload (sha256 %x, want %x)", got, want)
	}

	// Overwriting replaces the content.
	if _, err := c.Upload(ctx, path, "", bytes.NewReader([]byte("short"))); err != nil {
		t.Fatal(err)
	}
	if got := download(t, c, path, ""); got != "short" {
		t.Fatalf("after overwrite: got %q", got)
	}
}

func download(t *testing.T, c *Client, path, user string) string {
	t.Helper()
	body, _, err := c.Download(testCtx(t), path, user)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUploadAsUser(t *testing.T) {
	requireUser(t)
	env := newTestEnv(t)
	c := env.client("")
	// "user" may not write the test's directory; /tmp it may.
	dir := filepath.Join("/tmp", "envdclient-test-"+filepath.Base(env.workdir))
	t.Cleanup(func() { c.Remove(testCtx(t), dir, "") })
	e, err := c.Upload(testCtx(t), filepath.Join(dir, "mine.txt"), "user", bytes.NewReader([]byte("hi")))
	if err != nil {
		t.Fatal(err)
	}
	if e.Owner != "user" {
		t.Fatalf("uploaded as user: owner %q, want user", e.Owner)
	}
	if got := download(t, c, e.Path, "user"); got != "hi" {
		t.Fatalf("download as user: got %q", got)
	}
}

// failingReader yields some bytes, then fails.
type failingReader struct{ n int }

var errSource = errors.New("source broke")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errSource
	}
	n := min(len(p), r.n)
	r.n -= n
	return n, nil
}

func TestUploadSourceFails(t *testing.T) {
	env := newTestEnv(t)
	c := env.client("")
	ctx := testCtx(t)
	path := filepath.Join(env.workdir, "partial.bin")
	_, err := c.Upload(ctx, path, "", &failingReader{n: 1 << 20})
	if !errors.Is(err, errSource) {
		t.Fatalf("upload from a failing reader: got %v, want the reader's error", err)
	}
	if _, err := c.Stat(ctx, path, ""); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a failed upload left a file behind: stat gave %v", err)
	}
}

func TestFileErrors(t *testing.T) {
	env := newTestEnv(t)
	c := env.client("")
	ctx := testCtx(t)
	missing := filepath.Join(env.workdir, "missing")
	for _, tc := range []struct {
		name string
		err  error
		kind error
	}{
		{"download missing", downloadErr(c, missing), errdefs.ErrNotFound},
		{"download dir", downloadErr(c, env.workdir), errdefs.ErrInvalid},
		{"download empty path", downloadErr(c, ""), errdefs.ErrInvalid},
		{"download as unknown user", func() error { _, _, err := c.Download(ctx, missing, "no-such-user-xyz"); return err }(), errdefs.ErrUnauthenticated},
		{"upload onto a dir", func() error { _, err := c.Upload(ctx, env.workdir, "", bytes.NewReader(nil)); return err }(), errdefs.ErrInvalid},
		{"stat missing", func() error { _, err := c.Stat(ctx, missing, ""); return err }(), errdefs.ErrNotFound},
		{"list missing", func() error { _, err := c.ListDir(ctx, missing, "", 1); return err }(), errdefs.ErrNotFound},
	} {
		if !errors.Is(tc.err, tc.kind) {
			t.Errorf("%s: got %v, want an error of kind %q", tc.name, tc.err, tc.kind)
		}
	}
}

func downloadErr(c *Client, path string) error {
	body, _, err := c.Download(context.Background(), path, "")
	if err == nil {
		body.Close()
	}
	return err
}

func TestFilesystem(t *testing.T) {
	env := newTestEnv(t)
	c := env.client("")
	ctx := testCtx(t)
	root := env.workdir
	// root/a/b/c and root/a/f.txt, root/z.txt
	d, err := c.MakeDir(ctx, filepath.Join(root, "a", "b", "c"), "")
	if err != nil {
		t.Fatal(err)
	}
	if d.Type != nestbox.EntryDir || d.Name != "c" || d.Mode&0o170000 != modeDir {
		t.Fatalf("make dir: got %+v, want a directory named c", d)
	}
	if _, err := c.MakeDir(ctx, filepath.Join(root, "a", "b"), ""); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("make an existing dir: got %v, want already exists", err)
	}
	for _, p := range []string{"a/f.txt", "z.txt"} {
		if _, err := c.Upload(ctx, filepath.Join(root, p), "", bytes.NewReader([]byte(p))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.MakeDir(ctx, filepath.Join(root, "z.txt"), ""); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("make dir over a file: got %v, want invalid", err)
	}

	for _, tc := range []struct {
		depth int
		want  []string
	}{
		{0, []string{"a", "z.txt"}},
		{1, []string{"a", "z.txt"}},
		{2, []string{"a", "a/b", "a/f.txt", "z.txt"}},
		{3, []string{"a", "a/b", "a/b/c", "a/f.txt", "z.txt"}},
	} {
		es, err := c.ListDir(ctx, root, "", tc.depth)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range es {
			rel, _ := filepath.Rel(root, e.Path)
			got = append(got, rel)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("list depth %d: got %v, want %v", tc.depth, got, tc.want)
		}
	}

	f, err := c.Stat(ctx, filepath.Join(root, "a", "f.txt"), "")
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != nestbox.EntryFile || f.Size != int64(len("a/f.txt")) || f.Mode != modeFile|0o644 || f.Permissions != "-rw-r--r--" || f.ModifiedAt.IsZero() {
		t.Fatalf("stat file: got %+v (mode %o)", f, f.Mode)
	}
	if _, err := c.ListDir(ctx, filepath.Join(root, "z.txt"), "", 1); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("list a file: got %v, want invalid", err)
	}

	if err := c.Remove(ctx, filepath.Join(root, "a"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(ctx, filepath.Join(root, "a", "b"), ""); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("stat after remove: got %v, want not found", err)
	}
	// As with E2B's envd, removing what is not there succeeds.
	if err := c.Remove(ctx, filepath.Join(root, "a"), ""); err != nil {
		t.Fatalf("remove a missing path: %v", err)
	}
	if _, err := c.ListDir(ctx, root, "", -1); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("negative depth: got %v, want invalid", err)
	}
}
