package nestbox

import (
	"errors"
	"io"
	"testing"
)

func TestPipeBuffer(t *testing.T) {
	p := newPipeBuffer()
	// Writes never block, however much is unread.
	for range 100 {
		if _, err := p.Write(make([]byte, 64<<10)); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("boom")
	p.closeWithError(boom)
	p.closeWithError(nil) // only the first close counts
	if _, err := p.Write([]byte("late")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Write after close: %v, want io.ErrClosedPipe", err)
	}
	n, err := io.Copy(io.Discard, p)
	if n != 100*64<<10 || !errors.Is(err, boom) {
		t.Errorf("read %d bytes, %v; want %d, boom", n, err, 100*64<<10)
	}

	// A reader blocked on an empty pipe wakes at the write.
	p = newPipeBuffer()
	got := make(chan string)
	go func() {
		b := make([]byte, 8)
		n, _ := p.Read(b)
		got <- string(b[:n])
	}()
	_, _ = p.Write([]byte("hi"))
	if s := <-got; s != "hi" {
		t.Errorf("read %q, want hi", s)
	}
	p.closeWithError(nil)
	if _, err := p.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("Read after close: %v, want io.EOF", err)
	}
}
