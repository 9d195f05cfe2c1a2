package rootfs

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
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
