// Package filesystem is envd's filesystem.Filesystem Connect service: stat,
// mkdir, move, list, remove and directory watches (streaming and polling),
// acting as the sandbox user of each request. It also owns how an entry is
// described (Entry) and where file metadata lives (user.e2b.* extended
// attributes), which the /files handler shares. Imported by internal/envd and
// internal/envd/files.
package filesystem

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"nestbox.dev/internal/envd/identity"
	"nestbox.dev/internal/envd/settings"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/filesystempb/filesystempbconnect"
)

// Config configures a Service.
type Config struct {
	Settings *settings.Settings // required
	Logger   *slog.Logger       // nil discards logs
}

// Service implements filesystempbconnect.FilesystemHandler. It is safe for
// concurrent use. Envd normally runs as root: every operation runs with
// envd's own rights, and what it creates is given to the request's user, as
// E2B's envd does.
type Service struct {
	settings *settings.Settings
	log      *slog.Logger

	// ctx ends every watch when the service closes.
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards the fields below it. wg counts running watches (streams and
	// polling watchers) so Close can wait for them.
	mu       sync.Mutex
	closed   bool
	wg       sync.WaitGroup
	watchers map[string]*pollWatcher
}

var _ filesystempbconnect.FilesystemHandler = (*Service)(nil)

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Settings == nil {
		return nil, errors.New("filesystem: settings are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		settings: cfg.Settings,
		log:      log,
		ctx:      ctx,
		cancel:   cancel,
		watchers: map[string]*pollWatcher{},
	}, nil
}

// Close ends every watch (WatchDir streams end with unavailable, polling
// watchers are dropped) and waits for them. Later watches fail; the other
// RPCs keep working. Close is idempotent.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closed = true
	s.watchers = map[string]*pollWatcher{}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// startWatch registers a running watch with Close; the caller must call
// s.wg.Done when it ends.
func (s *Service) startWatch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errdefs.Unavailable("filesystem service is shutting down")
	}
	s.wg.Add(1)
	return nil
}

// resolve returns the user of a request and path made absolute for them.
func (s *Service) resolve(h http.Header, path string) (identity.User, string, error) {
	u, err := identity.FromHeader(h, s.settings.DefaultUser())
	if err != nil {
		return identity.User{}, "", err
	}
	abs, err := u.Resolve(path)
	if err != nil {
		return identity.User{}, "", err
	}
	return u, abs, nil
}
