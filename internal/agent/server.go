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
// a few seconds. Sandboxes are not touched.
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
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Long proxied streams: cut them.
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
