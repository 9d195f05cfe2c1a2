// Package envd is the agent that runs inside every sandbox, often as its
// first process. It serves E2B's envd API on one HTTP/1.1 listener: the
// process.Process and filesystem.Filesystem Connect services, /files, /health,
// /envs, /metrics and /init, plus Nestbox's snapshot preparation. Imported by
// cmd/envd, and by the fake sandbox driver, which serves it in a test's own
// process.
package envd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"nestbox.dev/internal/envd/files"
	"nestbox.dev/internal/envd/filesystem"
	"nestbox.dev/internal/envd/portfwd"
	"nestbox.dev/internal/envd/process"
	"nestbox.dev/internal/envd/settings"
)

// Version is the envd API version reported to clients. E2B's SDK enables
// features by it (see docs/architecture.md); we implement 0.6.x.
const Version = "0.6.13"

// DefaultPort is the port E2B's SDK expects envd on.
const DefaultPort = 49983

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	// Port to listen on; zero means DefaultPort.
	Port int
	// Dev runs envd outside a sandbox: no PID-1 duties and no port
	// forwarding unless PortForward is set.
	Dev bool
	// PortForward relays loopback-only services to the sandbox's external
	// addresses. Always on outside Dev mode.
	PortForward bool
	// DefaultUser runs requests that name no user; "" means "user".
	DefaultUser string
	// DefaultWorkdir is the working directory of processes started without
	// one; "" means the user's home.
	DefaultWorkdir string
	// MaxUploadBytes caps one /files upload; zero means no cap.
	MaxUploadBytes int64
	// RestoreTimeout bounds the re-initialisation after a snapshot restore;
	// zero means 10 s. It is separate from how long the platform waits for
	// readiness.
	RestoreTimeout time.Duration
	Logger         *slog.Logger
}

// Server is envd. Create it with New, then call Run or Serve once.
type Server struct {
	cfg      Config
	log      *slog.Logger
	settings *settings.Settings
	proc     *process.Service
	fs       *filesystem.Service
	files    *files.Handler
	fwd      *portfwd.Forwarder // nil when port forwarding is off
	metrics  *metricsSampler
	http     *http.Server
	snap     snapshotState
}

// New builds a Server and its services.
func New(cfg Config) (*Server, error) {
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.DefaultUser == "" {
		cfg.DefaultUser = "user"
	}
	if cfg.RestoreTimeout <= 0 {
		cfg.RestoreTimeout = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, settings: settings.New(cfg.DefaultUser, cfg.DefaultWorkdir), metrics: newMetricsSampler()}
	var err error
	if s.proc, err = process.New(process.Config{Settings: s.settings, Logger: log.With("service", "process")}); err != nil {
		return nil, fmt.Errorf("process service: %w", err)
	}
	if s.fs, err = filesystem.New(filesystem.Config{Settings: s.settings, Logger: log.With("service", "filesystem")}); err != nil {
		s.proc.Close()
		return nil, fmt.Errorf("filesystem service: %w", err)
	}
	if s.files, err = files.New(files.Config{Settings: s.settings, Logger: log.With("service", "files"), MaxUploadBytes: cfg.MaxUploadBytes}); err != nil {
		s.fs.Close()
		s.proc.Close()
		return nil, fmt.Errorf("files handler: %w", err)
	}
	if !cfg.Dev || cfg.PortForward {
		s.fwd = portfwd.New(portfwd.Config{Exclude: []uint16{uint16(cfg.Port)}, Logger: log.With("service", "portfwd")})
	}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// Streams (exec output, watches) are long-lived; only idle
		// keep-alive connections are timed out.
		IdleTimeout: 620 * time.Second,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	// HTTP/2 stays off on plain HTTP (the default); E2B's SDK speaks
	// HTTP/1.1 here.
	return s, nil
}

// Settings returns the sandbox-wide settings (tests and cmd/envd use it).
func (s *Server) Settings() *settings.Settings { return s.settings }

// Run listens on the configured port and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(s.cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then shuts down gracefully (5 s) and
// closes the services. Running processes are left alone.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	fwdCtx, stopFwd := context.WithCancel(context.WithoutCancel(ctx))
	if s.fwd != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.fwd.Run(fwdCtx) }()
	}
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(ln) }()
	s.log.Info("envd listening", "addr", ln.Addr().String(), "version", Version, "dev", s.cfg.Dev)

	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = s.http.Shutdown(shutCtx)
		cancel()
		<-errc
	}
	stopFwd()
	wg.Wait()
	s.fs.Close()
	s.proc.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
