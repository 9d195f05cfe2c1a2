package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"

	"nestbox.dev/internal/metrics"
)

// Worker is background work an extension adds to the control plane
// (nestbox.dev/platform): Run runs in its own goroutine under the control
// plane's context from Run's start until shutdown, which cancels that
// context and waits for Run to return.
type Worker struct {
	// Name names the worker in logs and metrics: "extension/worker".
	Name string
	Run  func(ctx context.Context) error
}

// workerFailures counts the extension workers that ended with an error or
// a panic before shutdown.
func newWorkerFailures(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nestbox_extension_worker_failures_total",
		Help: "Extension workers that returned an error or panicked before shutdown, by worker. A failed worker is not restarted.",
	}, []string{"worker"})
	return c, metrics.Register(reg, c)
}

// runWorker runs w until it returns. A worker that fails (an error, or a
// panic, which is recovered) is logged at error level and counted, and the
// control plane goes on serving without it: one extension's background
// job must not take down every tenant's API, nor be restarted in a loop
// that hides its failure. A worker that wants to survive its own errors
// retries inside Run.
func runWorker(ctx context.Context, w Worker, log *slog.Logger, failures *prometheus.CounterVec) {
	log = log.With("worker", w.Name)
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		return w.Run(ctx)
	}()
	switch {
	case err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// Stopped by the shutdown, as asked.
	case err != nil:
		failures.WithLabelValues(w.Name).Inc()
		log.Error("extension worker failed; the control plane goes on without it", "err", err)
	case ctx.Err() == nil:
		log.Info("extension worker finished before shutdown")
	}
}
