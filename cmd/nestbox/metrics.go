package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"nestbox.dev/internal/metrics"
)

// metricsFlag registers --metrics-listen, the address of the process's
// own metrics listener.
func metricsFlag(fs *flag.FlagSet, addr *string) {
	fs.StringVar(addr, "metrics-listen", env("NESTBOX_METRICS_LISTEN", ""), "address serving this process's Prometheus metrics at GET /metrics, without authentication, e.g. 127.0.0.1:9464: bind it to loopback or a private network (env NESTBOX_METRICS_LISTEN; default: none)")
}

// serveMetrics listens on addr and serves reg there in wg until ctx is
// done; "" serves nothing. Only the listen can fail: a failure later is
// logged, since the process's work does not depend on its scraper.
func serveMetrics(ctx context.Context, wg *sync.WaitGroup, addr string, reg *prometheus.Registry, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-listen: %w", err)
	}
	log.Info("metrics listening", "addr", ln.Addr().String())
	wg.Go(func() {
		if err := metrics.Serve(ctx, ln, reg, log); err != nil {
			log.Warn("metrics listener", "err", err)
		}
	})
	return nil
}
