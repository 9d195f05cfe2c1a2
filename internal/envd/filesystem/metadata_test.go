package filesystem

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/filesystempb"
	"nestbox.dev/internal/testenv"
)

func TestMetadataRoundTrip(t *testing.T) {
	env := newEnv(t, currentUser(t).Name)
	file := filepath.Join(t.TempDir(), "f")
	writeFile(t, file, "x")

	if md, err := Metadata(file); err != nil || md != nil {
		t.Fatalf("metadata of a fresh file: %v, %v", md, err)
	}
	if err := SetMetadata(file, map[string]string{"Author": "mish", "purpose": "upload", "empty": ""}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"author": "mish", "purpose": "upload", "empty": ""}
	if md, err := Metadata(file); err != nil || !maps.Equal(md, want) {
		t.Fatalf("Metadata: got %v, %v; want %v", md, err, want)
	}
	res, err := env.clients["json"].Stat(bg(), req(&filesystempb.StatRequest{Path: file}))
	if err != nil || !maps.Equal(res.Msg.GetEntry().GetMetadata(), want) {
		t.Fatalf("Stat metadata: got %v, %v; want %v", res.Msg.GetEntry().GetMetadata(), err, want)
	}
	// Attributes outside user.e2b. are neither shown nor touched.
	if err := syscall.Setxattr(file, "user.other", []byte("keep"), 0); err != nil {
		t.Fatal(err)
	}
	// Setting replaces the whole set.
	if err := SetMetadata(file, map[string]string{"purpose": "renamed"}); err != nil {
		t.Fatal(err)
	}
	if md, _ := Metadata(file); !maps.Equal(md, map[string]string{"purpose": "renamed"}) {
		t.Fatalf("after replace: got %v", md)
	}
	buf := make([]byte, 16)
	if n, err := syscall.Getxattr(file, "user.other", buf); err != nil || string(buf[:n]) != "keep" {
		t.Fatalf("user.other: %q, %v", buf[:n], err)
	}
	if err := SetMetadata(file, nil); err != nil {
		t.Fatal(err)
	}
	if md, _ := Metadata(file); md != nil {
		t.Fatalf("after clearing: got %v", md)
	}
	// One set outside envd (setfattr) shows up, bad UTF-8 made valid.
	if err := syscall.Setxattr(file, "user.e2b.raw", []byte{'a', 0xff}, 0); err != nil {
		t.Fatal(err)
	}
	if md, _ := Metadata(file); md["raw"] != "a\uFFFD" {
		t.Fatalf("raw attribute: got %q", md["raw"])
	}
}

func TestMetadataValidation(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	writeFile(t, file, "x")
	for _, tc := range []struct {
		name string
		md   map[string]string
	}{
		{"empty key", map[string]string{"": "v"}},
		{"space in key", map[string]string{"a b": "v"}},
		{"non-ASCII key", map[string]string{"ключ": "v"}},
		{"control char", map[string]string{"a\x01": "v"}},
		{"key too long", map[string]string{strings.Repeat("k", MaxMetadataKeyBytes+1): "v"}},
		{"value not UTF-8", map[string]string{"k": "\xff"}},
		{"too big", map[string]string{"k": strings.Repeat("v", MaxMetadataBytes)}},
		{"same key twice", map[string]string{"Key": "1", "key": "2"}},
	} {
		if err := SetMetadata(file, tc.md); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: got %v, want invalid", tc.name, err)
		}
	}
	if md, _ := Metadata(file); md != nil {
		t.Errorf("invalid metadata was partly stored: %v", md)
	}
	// The longest key. (The largest total may not fit: ext4 keeps all of
	// a file's attributes in one 4 KiB block, headers included, and then
	// answers ENOSPC, which is ErrNoSpace.)
	ok := map[string]string{strings.Repeat("k", MaxMetadataKeyBytes): strings.Repeat("v", 2048)}
	if err := SetMetadata(file, ok); err != nil {
		t.Errorf("metadata with the longest key: %v", err)
	}
	if err := ValidateMetadata(map[string]string{"k": strings.Repeat("v", MaxMetadataBytes-1)}); err != nil {
		t.Errorf("metadata of exactly the maximum size: %v", err)
	}
}

func TestMetadataUnsupported(t *testing.T) {
	// procfs has no user attributes.
	const path = "/proc/self/status"
	t.Run("set", func(t *testing.T) {
		// Without root, procfs refuses with EACCES before it says ENOTSUP.
		testenv.RequireRoot(t)
		err := SetMetadata(path, map[string]string{"k": "v"})
		if !errors.Is(err, errdefs.ErrInvalid) || !errors.Is(err, syscall.ENOTSUP) || err.Error() != "metadata not supported on this filesystem" {
			t.Fatalf("SetMetadata on procfs: got %v", err)
		}
		if err := SetMetadata(path, nil); err != nil {
			t.Fatalf("clearing metadata on procfs: %v", err)
		}
	})
	if md, err := Metadata(path); err != nil || md != nil {
		t.Fatalf("Metadata on procfs: %v, %v", md, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	if e, err := Entry(path); err != nil || e.GetMetadata() != nil {
		t.Fatalf("Entry on procfs: %v, %v", e, err)
	}
}

func TestOSErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		errno syscall.Errno
		kind  error
	}{
		{syscall.ENOENT, errdefs.ErrNotFound},
		{syscall.EEXIST, errdefs.ErrAlreadyExists},
		{syscall.EACCES, errdefs.ErrPermission},
		{syscall.EROFS, errdefs.ErrPermission},
		{syscall.ENOSPC, errdefs.ErrNoSpace},
		{syscall.EXDEV, errdefs.ErrInvalid},
	} {
		err := OSError("op", "/p", &os.PathError{Op: "open", Path: "/p", Err: tc.errno})
		if !errors.Is(err, tc.kind) || !errors.Is(err, tc.errno) {
			t.Errorf("OSError(%v): %v is not %v", tc.errno, err, tc.kind)
		}
		if want := "op /p: " + tc.errno.Error(); err.Error() != want {
			t.Errorf("OSError(%v) = %q, want %q", tc.errno, err, want)
		}
	}
	if err := OSError("op", "/p", errors.New("odd")); err.Error() != "op /p: odd" || errdefs.HTTPStatus(err) != 500 {
		t.Errorf("unknown error: %v", err)
	}
	if OSError("op", "/p", nil) != nil {
		t.Error("OSError(nil) != nil")
	}
}

func TestEntryNames(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad\xffname")
	writeFile(t, bad, "")
	e, err := Entry(bad)
	if err != nil {
		t.Fatal(err)
	}
	if e.GetName() != "bad\uFFFDname" {
		t.Errorf("invalid UTF-8 name: got %q", e.GetName())
	}
	if _, err := Entry(filepath.Join(dir, "missing")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Entry of a missing path: got %v, want not found", err)
	}
	if e, err := Entry("/"); err != nil || e.GetName() != "/" || e.GetType() != filesystempb.FileType_FILE_TYPE_DIRECTORY {
		t.Errorf("Entry(/): %v, %v", e, err)
	}
	// Owners without a name are numeric.
	if os.Geteuid() == 0 {
		if err := os.Lchown(bad, 54321, 54321); err != nil {
			t.Fatal(err)
		}
		if e, _ := Entry(bad); e.GetOwner() != "54321" || e.GetGroup() != "54321" {
			t.Errorf("unnamed owner: got %q:%q", e.GetOwner(), e.GetGroup())
		}
	}
}
