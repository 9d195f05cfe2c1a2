package nestbox

import (
	"bytes"
	"io"
	"sync"
)

// pipeBuffer is an in-memory pipe whose writer never blocks: the receive
// loop of a WebSocket must keep reading (to see "exit" and answer pings)
// whether or not anyone reads the output. Unread output stays in memory.
// It is safe for one writer and any number of readers.
type pipeBuffer struct {
	mu   sync.Mutex
	cond sync.Cond // signalled on every write and on close
	buf  bytes.Buffer
	err  error // returned by Read once buf is empty; nil while open
}

func newPipeBuffer() *pipeBuffer {
	p := &pipeBuffer{}
	p.cond.L = &p.mu
	return p
}

// Read blocks until there is data or the pipe is closed.
func (p *pipeBuffer) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.buf.Len() == 0 && p.err == nil {
		p.cond.Wait()
	}
	if p.buf.Len() > 0 {
		return p.buf.Read(b)
	}
	return 0, p.err
}

func (p *pipeBuffer) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return 0, io.ErrClosedPipe
	}
	p.buf.Write(b)
	p.cond.Broadcast()
	return len(b), nil
}

// closeWithError makes Read return err (io.EOF if nil) once the buffered
// data is read. Only the first call counts.
func (p *pipeBuffer) closeWithError(err error) {
	if err == nil {
		err = io.EOF
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
	p.cond.Broadcast()
}
