package rootfs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestChecksum(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int64, at map[int64][]byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		for off, b := range at {
			if _, err := f.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	sum := func(p string) string {
		t.Helper()
		s, err := Checksum(p)
		if err != nil {
			t.Fatalf("checksum %s: %v", p, err)
		}
		return s
	}
	const size = 64 << 20
	data := map[int64][]byte{0: []byte("superblock"), 5 << 20: make([]byte, 3<<20), 40 << 20: []byte("tail data")}
	for i := range data[5<<20] {
		data[5<<20][i] = byte(i)
	}
	src := write("src", size, data)
	copied := filepath.Join(dir, "copy")
	if _, err := CopySparse(src, copied); err != nil {
		t.Fatal(err)
	}
	// The same content with zeros written where src has holes.
	zeroed := write("zeroed", size, map[int64][]byte{0: []byte("superblock"), 5 << 20: data[5<<20], 40 << 20: []byte("tail data"),
		20 << 20: make([]byte, 1<<20)})
	want := sum(src)
	for _, p := range []string{copied, zeroed} {
		if got := sum(p); got != want {
			t.Errorf("checksum of %s: %s, want the source's %s", filepath.Base(p), got, want)
		}
	}
	for name, at := range map[string]map[int64][]byte{
		"a byte changed in data": {5<<20 + 100: {0xff}},
		"a byte in a hole":       {30 << 20: {1}},
		"a byte at the end":      {size - 1: {1}},
		"a longer file":          {size: {0}},
	} {
		p := filepath.Join(dir, "damaged")
		os.Remove(p)
		if _, err := CopySparse(src, p); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		for off, b := range at {
			f.WriteAt(b, off)
		}
		f.Close()
		if got := sum(p); got == want {
			t.Errorf("checksum with %s: unchanged %s", name, got)
		}
	}
	// The same data at another offset is other content.
	if got := sum(write("moved", size, map[int64][]byte{4096: []byte("superblock")})); got == sum(write("orig", size, map[int64][]byte{0: []byte("superblock")})) {
		t.Errorf("checksum of data moved by a block: unchanged %s", got)
	}
	if _, err := Checksum(filepath.Join(dir, "missing")); err == nil {
		t.Error("checksum of a missing file: no error")
	}
}

func BenchmarkChecksum(b *testing.B) {
	p := filepath.Join(b.TempDir(), "layer")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	f.Truncate(1 << 30)
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	for i := range 32 { // 32 MiB of data in a 1 GiB image
		f.WriteAt(chunk, int64(i)*(8<<20))
	}
	f.Close()
	b.SetBytes(32 << 20)
	for b.Loop() {
		if _, err := Checksum(p); err != nil {
			b.Fatal(err)
		}
	}
}
