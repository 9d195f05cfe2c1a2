package envd

import (
	"context"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
)

// snapshotState tracks a prepared freeze. The platform calls
// POST /snapshot/prepare right before it checkpoints the sandbox and probes
// GET /health right after it restores it; that first probe undoes the
// preparation.
type snapshotState struct {
	// mu guards the fields below and serialises prepare and recover.
	mu       sync.Mutex
	prepared bool
	maxProcs int
	at       time.Time
}

// handlePrepare makes envd safe to freeze: every file written in the
// sandbox is flushed (sync(2): gVisor writes its cached file data through
// to the host's layer, where the host's own flush of the layer picks it
// up), idle keep-alive connections are closed (a restored sandbox may have
// new peers and stale sockets), the runtime is limited to one OS thread so
// that fewer threads are frozen mid-flight, and, last, the Go heap is
// collected so the memory image holds no garbage. Everything on this path
// that allocates (the log line, the response header) comes before the
// collection; writing the 204 reuses the connection's buffers. It is
// idempotent.
func (s *Server) handlePrepare(w http.ResponseWriter, r *http.Request) {
	s.snap.mu.Lock()
	defer s.snap.mu.Unlock()
	syscall.Sync()
	if !s.snap.prepared {
		s.snap.prepared = true
		s.snap.at = time.Now()
		s.log.Info("preparing for snapshot")
		// Closes idle connections now and the current one after this
		// response.
		s.http.SetKeepAlivesEnabled(false)
		w.Header().Set("Connection", "close")
		s.snap.maxProcs = runtime.GOMAXPROCS(1)
		// FreeOSMemory runs a full collection and returns the freed
		// pages to the OS: no allocation follows it on this path.
		debug.FreeOSMemory()
	}
	w.WriteHeader(http.StatusNoContent)
}

// recoverAfterRestore undoes handlePrepare and re-initialises what a freeze
// breaks: the CPU sampling baseline (its interval spans the freeze) and the
// port forwards (their connections are dead and addresses may have moved).
// The platform's first POST /init after a restore runs it, carrying the
// defaults in the same call, under its own timeout (the caller's readiness
// wait on /health is separate and does not undo the preparation). A
// prepare the platform abandoned (the pause failed and the sandbox kept
// running) is undone the same way.
func (s *Server) recoverAfterRestore(ctx context.Context) {
	s.snap.mu.Lock()
	defer s.snap.mu.Unlock()
	if !s.snap.prepared {
		return
	}
	s.snap.prepared = false
	runtime.GOMAXPROCS(s.snap.maxProcs)
	s.http.SetKeepAlivesEnabled(true)
	s.metrics.reset()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RestoreTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if s.fwd != nil {
			s.fwd.Reset()
		}
	}()
	select {
	case <-done:
		s.log.Info("recovered after restore", "frozen_for", time.Since(s.snap.at).Round(time.Millisecond))
	case <-ctx.Done():
		s.log.Warn("post-restore init timed out", "timeout", s.cfg.RestoreTimeout)
	}
}
