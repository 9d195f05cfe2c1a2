// Package process is envd's process.Process Connect service: it starts
// commands as sandbox users (with pipes or a PTY), streams their output to
// any number of followers, takes their input and signals, and reaps every
// child of envd. Only envd's server (internal/envd) may import it.
//
// Contract: a Service owns wait4(-1) for the whole OS process. envd may run
// as PID 1, so orphans re-parented to it must be reaped, and the only way to
// do that without racing is for one reaper to collect every exit status.
// Therefore nothing else in the OS process may start children and wait for
// them (no exec.Cmd.Run or Wait: the reaper would steal their status), and
// at most one Service may be open at a time.
//
// Lifetime: a process outlives the streams that follow it; a client that
// goes away does not kill it. It ends by itself, by SendSignal, or, as in
// E2B's envd, by SIGKILL once the Connect-Timeout-Ms of its Start request
// (the SDK's timeoutMs) has passed.
//
// Output policy: every follower (the Start stream and each Connect stream)
// has a bounded channel of Config.FollowerBuffer events. Output is never
// dropped for a follower that keeps reading: when its channel is full the
// process waits, as it would on a slow terminal. A follower that takes
// nothing for Config.FollowerTimeout is cut off (its stream ends with
// resource_exhausted) so that it cannot stall the process or the other
// followers for longer than that. Output that nobody follows is discarded.
package process

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"nestbox.dev/internal/envd/identity"
	"nestbox.dev/internal/envd/settings"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
	"nestbox.dev/internal/proto/processpb/processpbconnect"
)

// Defaults of Config's zero values.
const (
	DefaultFollowerBuffer  = 512
	DefaultFollowerTimeout = 5 * time.Second
	DefaultOutputGrace     = 2 * time.Second
)

// Config configures a Service. Zero values mean the documented defaults.
type Config struct {
	Settings *settings.Settings // required
	Logger   *slog.Logger       // nil = discard
	// FollowerBuffer is how many events each follower's channel holds; zero
	// means 512.
	FollowerBuffer int
	// FollowerTimeout is how long a follower whose channel is full may hold
	// up the process before it is cut off; zero means 5 s.
	FollowerTimeout time.Duration
	// OutputGrace is how long, after a process exits, envd keeps reading its
	// output for a grandchild that still holds the pipes or the PTY open;
	// zero means 2 s. The end event follows when the output reaches EOF or
	// the grace period is over.
	OutputGrace time.Duration
	// Subreaper makes envd the child subreaper of its descendants
	// (PR_SET_CHILD_SUBREAPER) when it is not PID 1, so that orphans are
	// re-parented to it and reaped here. PID 1 gets them anyway.
	Subreaper bool
}

// Service implements processpbconnect.ProcessHandler. Create it with New
// and Close it when envd stops. It is safe for concurrent use.
type Service struct {
	cfg     Config
	log     *slog.Logger
	reaper  *reaper
	procs   *table
	closing chan struct{} // closed by Close: per-process goroutines give up
	// wg counts per-process goroutines. Add is only called under mu with
	// closed false, so Close's Wait never races a new process.
	wg       sync.WaitGroup
	once     sync.Once
	closeErr error

	// mu guards closed.
	mu     sync.Mutex
	closed bool
}

var _ processpbconnect.ProcessHandler = (*Service)(nil)

// New returns a Service and starts its reaper. At most one Service may be
// open in an OS process at a time (see the package doc).
func New(cfg Config) (*Service, error) {
	if cfg.Settings == nil {
		return nil, errdefs.Invalid("process service: settings are required")
	}
	if cfg.FollowerBuffer <= 0 {
		cfg.FollowerBuffer = DefaultFollowerBuffer
	}
	if cfg.FollowerTimeout <= 0 {
		cfg.FollowerTimeout = DefaultFollowerTimeout
	}
	if cfg.OutputGrace <= 0 {
		cfg.OutputGrace = DefaultOutputGrace
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r, err := startReaper(log, cfg.Subreaper)
	if err != nil {
		return nil, fmt.Errorf("start reaper: %w", err)
	}
	return &Service{cfg: cfg, log: log, reaper: r, procs: newTable(), closing: make(chan struct{})}, nil
}

// Close stops the reaper and ends every follower's stream with unavailable.
// It does not kill processes, but it closes envd's ends of their pipes and
// PTYs. Close is idempotent.
func (s *Service) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.closing)
		s.wg.Wait()
		s.closeErr = s.reaper.stop()
	})
	return s.closeErr
}

// track reserves a slot for a new process's goroutines; it fails once the
// service is closed. The caller must call s.wg.Done when the process's
// goroutines end (or at once if it does not start).
func (s *Service) track() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errdefs.Unavailable("process service is closed")
	}
	s.wg.Add(1)
	return nil
}

// user resolves the user an RPC acts as.
func (s *Service) user(h http.Header) (identity.User, error) {
	return identity.FromHeader(h, s.cfg.Settings.DefaultUser())
}

// find returns the process sel names.
func (s *Service) find(sel *processpb.ProcessSelector) (*proc, error) {
	switch v := sel.GetSelector().(type) {
	case *processpb.ProcessSelector_Pid:
		if p := s.procs.byPID(v.Pid); p != nil {
			return p, nil
		}
		return nil, errdefs.NotFound("process with pid %d not found", v.Pid)
	case *processpb.ProcessSelector_Tag:
		if p := s.procs.byTag(v.Tag); p != nil {
			return p, nil
		}
		return nil, errdefs.NotFound("process with tag %q not found", v.Tag)
	}
	return nil, errdefs.Invalid("process selector: a pid or a tag is required")
}
