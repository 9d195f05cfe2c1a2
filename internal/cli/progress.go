package cli

import (
	"fmt"
	"io"
	"time"
)

// Transfers smaller than this show no progress.
const progressMinBytes = 8 << 20

// progress shows how far a transfer of known size has come, on one
// terminal line updated at most every progressEvery.
type progress struct {
	w           io.Writer
	label       string
	total, done int64
	last        time.Time
}

const progressEvery = 200 * time.Millisecond

// newProgress returns nil unless stderr is a terminal and the transfer is
// big and of known size.
func newProgress(stdio IO, label string, total int64) *progress {
	if !stdio.StderrIsTerminal || total < progressMinBytes {
		return nil
	}
	return &progress{w: stdio.Stderr, label: label, total: total}
}

func (p *progress) reader(r io.Reader) io.Reader { return &progressReader{r: r, p: p} }

func (p *progress) add(n int) {
	p.done += int64(n)
	if now := time.Now(); now.Sub(p.last) >= progressEvery {
		p.last = now
		p.show()
	}
}

func (p *progress) show() {
	fmt.Fprintf(p.w, "\r%s: %s / %s (%d%%)\x1b[K", p.label, bytesIEC(uint64(p.done)), bytesIEC(uint64(p.total)), p.done*100/p.total)
}

// finish shows the final count and ends the line.
func (p *progress) finish() {
	p.show()
	fmt.Fprintln(p.w)
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.add(n)
	return n, err
}
