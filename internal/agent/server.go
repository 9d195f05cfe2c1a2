package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server returns the agent's HTTP server for addr: HTTP/1.1 only (no
// head-of-line blocking between the control plane's unrelated streams),
// a read-header timeout against slow clients and an idle timeout longer
// than the control plane's keep-alive.
func (a *Agent) Server(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       620 * time.Second,
		Protocols:         http1Only(),
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
}

// Serve serves the agent's API on ln (HTTPS if Config.TLSCertFile is set)
// until ctx is done, then shuts the server down, giving requests in flight
// a few seconds, and returns once the changes of sandboxes in flight have
// ended (stop.go). Sandboxes are not touched: they keep running.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	srv := a.Server(ln.Addr().String())
	errc := make(chan error, 1)
	go func() {
		if a.cfg.TLSCertFile != "" {
			errc <- srv.ServeTLS(ln, a.cfg.TLSCertFile, a.cfg.TLSKeyFile)
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// No new change starts from here on; those in flight get the
	// server's grace period to answer and then, cut from their callers
	// (a create undoes itself), until they have ended.
	a.ops.close(canceled())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Long proxied streams: cut them.
		srv.Close()
	}
	serveErr := <-errc
	a.waitOps(context.WithoutCancel(ctx))
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// stopGrace bounds how long a stopping agent waits for the changes in
// flight: a teardown's own bound and then some.
const stopGrace = teardownTimeout + 30*time.Second

// waitOps waits, up to stopGrace, for the changing RPCs in flight to end,
// saying so when there are any.
func (a *Agent) waitOps(ctx context.Context) {
	if left := a.ops.close(canceled()); left == 0 {
		return
	}
	a.log.Info("waiting for the sandbox operations in flight before stopping")
	ctx, cancel := context.WithTimeout(ctx, stopGrace)
	defer cancel()
	if left := a.ops.close(ctx); left > 0 {
		a.log.Warn("stopping with sandbox operations in flight: a restarted agent finishes them", "left", left)
	}
}

// canceled is a context that is already done.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
