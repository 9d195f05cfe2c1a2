// Package metrics is the Prometheus plumbing every Nestbox process shares:
// the registry a process makes once (with the Go runtime and process
// collectors), the /metrics handler over it, the listener an operator may
// give it of its own, and the few label conventions the components agree
// on (outcome, duration buckets). The metrics themselves are defined by
// the package whose work they measure (internal/server, internal/lifecycle,
// internal/agent), registered on the registry passed in to it.
//
// There is no global registry: each process makes one with NewRegistry
// and hands it down. Any package of Nestbox may import this one.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"nestbox.dev/internal/errdefs"
)

// NewRegistry returns a process's registry, holding the Go runtime's
// collector and the process collector (CPU, memory, open files).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// OrDiscard returns reg, or a registry nobody reads when reg is nil: a
// component whose Config leaves its registry unset still counts (its code
// has no nil checks), and nothing is served.
func OrDiscard(reg prometheus.Registerer) prometheus.Registerer {
	if reg == nil {
		return prometheus.NewRegistry()
	}
	return reg
}

// Register registers every collector on reg, stopping at the first that
// reg refuses (a name registered twice: two components of one kind on one
// registry).
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

// Handler serves g in Prometheus's text (or protobuf, when asked)
// exposition format. A collector that fails is logged and left out of
// the answer; the rest is still served.
func Handler(g prometheus.Gatherer, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		// A scrape is cheap, but a stuck one must not pile up.
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	})
}

// Serve serves GET /metrics (and nothing else) of g on ln until ctx is
// done: the separate metrics listener (--metrics-listen), for a scraper
// that should hold no API credential. It has no authentication: bind it
// to loopback or a private network. Requests in flight get 5 s at the
// end.
func Serve(ctx context.Context, ln net.Listener, g prometheus.Gatherer, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(g, log))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Outcome is the outcome label of an operation that returned err: "ok",
// or the error's stable code (errdefs.Code: "unavailable",
// "resource_exhausted", ...), a small fixed set.
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return errdefs.Code(err)
}

// OpBuckets returns the histogram buckets of lifecycle operations, from
// a memory-tier resume (milliseconds) to a first create that builds its
// template or a multi-GiB checkpoint (minutes), in seconds.
func OpBuckets() []float64 {
	return []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
}
