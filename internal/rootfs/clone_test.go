package rootfs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"nestbox.dev/internal/testenv"
)

// TestCopySparse copies a file with data between holes: the copy has the
// same size and bytes, and takes no more disk than the data.
func TestCopySparse(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	chunks := map[int64][]byte{
		0:           bytes.Repeat([]byte("a"), 4096),
		10 << 20:    bytes.Repeat([]byte("b"), 1<<20),
		size - 4096: bytes.Repeat([]byte("c"), 4096),
	}
	for off, b := range chunks {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	dst := filepath.Join(dir, "dst")
	n, err := CopySparse(src, dst)
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	if n < 1<<20+8192 || n > 4<<20 {
		t.Errorf("copied %d bytes, want about the %d of data", n, 1<<20+8192)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(src)
	if !bytes.Equal(got, want) {
		t.Fatal("the copy's bytes differ from the source's")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dst, &st); err != nil {
		t.Fatal(err)
	}
	if alloc := st.Blocks * 512; alloc > 4<<20 {
		t.Errorf("the copy allocates %d bytes of disk for %d of data: holes were filled", alloc, 1<<20+8192)
	}
	if _, err := CopySparse(src, dst); err == nil {
		t.Error("copy over an existing file succeeded, want an error")
	}
	if _, err := CopySparse(filepath.Join(dir, "missing"), filepath.Join(dir, "x")); err == nil {
		t.Error("copy of a missing file succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(err) {
		t.Errorf("a failed copy left its destination: %v", err)
	}
}

// TestCloneAndFrozenSource clones a mounted layer (the copy mounts with
// the source's files and is independent of it), then leaves the source
// frozen, as an agent that died during a Clone would: Remount thaws it
// (a write goes through) and Unmount removes it.
func TestCloneAndFrozenSource(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "mkfs.ext4")
	ctx := context.Background()
	lower := lowerDir(t)
	l, err := Mount(ctx, lower, t.TempDir(), MinSize)
	if err != nil {
		t.Fatal(err)
	}
	defer Unmount(ctx, l)
	if err := os.WriteFile(filepath.Join(l.Root, "mine"), []byte("source\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Sync(l); err != nil {
		t.Fatal(err)
	}
	c, err := Clone(l, t.TempDir())
	if err != nil {
		t.Fatalf("clone: %v", err)
	}
	if err := Remount(ctx, c); err != nil {
		t.Fatalf("mount the copy: %v", err)
	}
	defer Unmount(ctx, c)
	if b, err := os.ReadFile(filepath.Join(c.Root, "mine")); err != nil || string(b) != "source\n" {
		t.Fatalf("the copy's file: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(c.Root, "mine"), []byte("copy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(l.Root, "mine")); string(b) != "source\n" {
		t.Fatalf("a write to the copy reached the source: %q", b)
	}

	if _, err := freeze(l.UpperMount); err != nil {
		t.Fatal(err)
	}
	if err := Remount(ctx, l); err != nil {
		t.Fatalf("remount of a frozen layer: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- os.WriteFile(filepath.Join(l.Root, "after"), []byte("x"), 0o644) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		thawIfFrozen(l.UpperMount)
		t.Fatal("a write to a remounted layer hangs: it is still frozen")
	}
	if _, err := freeze(l.UpperMount); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(ctx, l); err != nil {
		t.Fatalf("unmount of a frozen layer: %v", err)
	}
}
