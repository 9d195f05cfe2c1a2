package files

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

type benchSize struct {
	name string
	size int
}

func benchSizes() []benchSize { return []benchSize{{"1MB", 1 << 20}, {"100MB", 100 << 20}} }

// BenchmarkUpload measures raw-body uploads over HTTP, end to end: request,
// temporary file, rename.
func BenchmarkUpload(b *testing.B) {
	e := newEnv(b, currentUserName(b), 0)
	for _, bs := range benchSizes() {
		b.Run(bs.name, func(b *testing.B) {
			data := bytes.Repeat([]byte("0123456789abcdef"), bs.size/16)
			target := filepath.Join(b.TempDir(), "up")
			url := e.url + "?" + q("path", target).Encode()
			b.SetBytes(int64(bs.size))
			b.ResetTimer()
			for b.Loop() {
				req, err := http.NewRequest("POST", url, bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set("Content-Type", octet)
				res, err := e.client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	}
}

// BenchmarkDownload measures downloads over HTTP, identity encoding.
func BenchmarkDownload(b *testing.B) {
	e := newEnv(b, currentUserName(b), 0)
	for _, bs := range benchSizes() {
		b.Run(bs.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "down")
			if err := os.WriteFile(path, bytes.Repeat([]byte("0123456789abcdef"), bs.size/16), 0o644); err != nil {
				b.Fatal(err)
			}
			url := e.url + "?" + q("path", path).Encode()
			b.SetBytes(int64(bs.size))
			b.ResetTimer()
			for b.Loop() {
				res, err := e.client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 || n != int64(bs.size) {
					b.Fatalf("status %d, %d bytes", res.StatusCode, n)
				}
			}
		})
	}
}
