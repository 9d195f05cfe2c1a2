// Package controlplane assembles the control plane from its parts: the
// store, the event stream, the lifecycle service over the hosts, the audit
// log, and the HTTP server. It also makes the first admin, team and API
// key of a new installation, and runs the workers extensions add. The
// public package nestbox.dev/platform, through which `nestbox up`,
// `nestbox server` and programs embedding Nestbox start a control plane,
// imports it.
package controlplane

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nestbox.dev"
	"nestbox.dev/internal/account"
	"nestbox.dev/internal/audit"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/events"
	"nestbox.dev/internal/fleet"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/metrics"
	"nestbox.dev/internal/server"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/team"
	"nestbox.dev/internal/usage"
)

// Config configures a ControlPlane. Store, Events and Hosts (or Fleet)
// are required.
type Config struct {
	Store  store.Store
	Events events.Stream
	Hosts  lifecycle.Hosts
	// Fleet, if not nil, is the registry of a fleet's hosts: it is Hosts
	// (leave Hosts nil), serves /v1/hosts and authenticates the hosts'
	// heartbeats and events; its monitor runs with the control plane.
	Fleet  *fleet.Registry
	Logger *slog.Logger
	// HostTokens authenticate the event posts of the host agent of the one
	// host in Hosts (any one of them), and bind them to it: they may
	// report on that host's capsules only.
	HostTokens []string
	// ReconcileInterval: zero means 60 s.
	ReconcileInterval time.Duration
	// StuckAfter: zero means 10 minutes.
	StuckAfter time.Duration
	// Domain is the sandbox domain for host routing and E2B's SDKs.
	Domain string
	// PublicURL is where clients reach the API (server.Config.PublicURL).
	PublicURL string
	// Ready, if not nil, holds API requests off with 503 until closed.
	Ready <-chan struct{}
	// ShutdownGrace is how long a stopping control plane lets background
	// creates and destroys finish; zero means 30 s.
	ShutdownGrace time.Duration
	// Accounts, if not nil, serves sign-up, log-in and sessions, and its
	// purge of deleted accounts runs with the control plane.
	Accounts *account.Service
	// Teams, if not nil, serves teams, members and invitations.
	Teams *team.Service
	// Limits are the operator's limits on tenants' capsules (per capsule,
	// per team, egress); zero fields are lifecycle's defaults.
	Limits lifecycle.Limits
	// Audit is the audit log; nil means one over Store with its defaults
	// (a retention of audit.DefaultRetention). Its retention worker runs
	// with the control plane. Accounts' BeforePurge should be its
	// Anonymise, so that a purge anonymises a user's entries first.
	Audit *audit.Logger
	// Metrics is the process's registry (metrics.NewRegistry), on which
	// the API's and the lifecycle's metrics are registered; nil makes one
	// for this control plane alone. The API does not serve it: the
	// operator serves ControlPlane.Metrics on a listener of its own
	// (metrics.Serve, `--metrics-listen`).
	Metrics *prometheus.Registry
	// KeyCacheTTL is how long the API trusts a key it found in the
	// store (server.Config.KeyCacheTTL): zero means 3 s, negative no
	// cache. A revocation reaches every control plane's cache through
	// Events' notices at once.
	KeyCacheTTL time.Duration
	// Usage configures usage accounting (its Store, Hosts, Logger and
	// Holder are the control plane's); zero fields are usage's defaults.
	Usage usage.Config
	// Extend, if not nil, is called once by New with the lifecycle
	// service, before the HTTP server is made, for what extensions add
	// (nestbox.dev/platform).
	Extend func(life *lifecycle.Service) (Extras, error)
}

// Extras are what extensions add to a control plane: routes after the
// core's behind the same authentication (server.Config.Extensions),
// middleware around every request, and background workers, each in its
// own goroutine from Run until shutdown (workers.go).
type Extras struct {
	Routes     []server.ExtensionRoute
	Middleware []func(http.Handler) http.Handler
	Workers    []Worker
}

// ControlPlane is the running control plane.
type ControlPlane struct {
	cfg    Config
	Life   *lifecycle.Service
	Server *server.Server
	// Metrics is the registry the control plane's metrics are on:
	// Config.Metrics, or the one New made.
	Metrics *prometheus.Registry
	// Usage samples capsules and rolls their usage up.
	Usage *usage.Worker
	// workers are the extensions' background workers; workerFailures
	// counts those that failed.
	workers        []Worker
	workerFailures *prometheus.CounterVec
}

// New assembles a ControlPlane; Run starts it.
func New(cfg Config) (*ControlPlane, error) {
	if cfg.Fleet != nil {
		if cfg.Hosts != nil || len(cfg.HostTokens) > 0 {
			return nil, errors.New("controlplane: a fleet's hosts are its registry's: set Fleet or Hosts and HostTokens, not both")
		}
		cfg.Hosts = cfg.Fleet
	}
	if cfg.Store == nil || cfg.Events == nil || cfg.Hosts == nil {
		return nil, errors.New("controlplane: Store, Events and Hosts are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 30 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewRegistry()
	}
	holder := ""
	if cfg.Fleet != nil {
		// Replicas share the store: one at a time reconciles.
		holder = "cp-" + rand.Text()[:12]
	}
	life, err := lifecycle.New(lifecycle.Config{
		Holder:            holder,
		Store:             cfg.Store,
		Events:            cfg.Events,
		Hosts:             cfg.Hosts,
		Logger:            cfg.Logger.With("component", "lifecycle"),
		ReconcileInterval: cfg.ReconcileInterval,
		StuckAfter:        cfg.StuckAfter,
		Limits:            cfg.Limits,
		Metrics:           cfg.Metrics,
	})
	if err != nil {
		return nil, err
	}
	var extras Extras
	if cfg.Extend != nil {
		if extras, err = cfg.Extend(life); err != nil {
			return nil, err
		}
	}
	for i, w := range extras.Workers {
		if w.Name == "" || w.Run == nil {
			return nil, errdefs.Invalid("controlplane: worker %d (%q) needs a name and a Run", i, w.Name)
		}
	}
	if cfg.Audit == nil {
		if cfg.Audit, err = audit.New(audit.Config{Store: cfg.Store, Logger: cfg.Logger.With("component", "audit"), Holder: holder}); err != nil {
			return nil, err
		}
	}
	var hosts []lifecycle.Host
	if cfg.Fleet == nil {
		hosts = cfg.Hosts.All()
	} else {
		cfg.Fleet.SetWatcher(life)
		if err := cfg.Metrics.Register(cfg.Fleet.Collector()); err != nil {
			return nil, fmt.Errorf("controlplane: register the fleet's metrics: %w", err)
		}
	}
	if len(cfg.HostTokens) > 0 && len(hosts) != 1 {
		return nil, errdefs.Invalid("controlplane: host tokens for %d hosts: a token must belong to one host", len(hosts))
	}
	var hostID string
	if len(hosts) == 1 {
		hostID = hosts[0].ID
	}
	srv, err := server.New(server.Config{
		Lifecycle:  life,
		Store:      cfg.Store,
		Logger:     cfg.Logger.With("component", "http"),
		HostTokens: cfg.HostTokens,
		HostID:     hostID,
		Fleet:      cfg.Fleet,
		Ready:      cfg.Ready,
		Domain:     cfg.Domain,
		PublicURL:  cfg.PublicURL,
		Accounts:   cfg.Accounts,
		Teams:      cfg.Teams,
		// The bootstrap's key acts as platform admin while its maker,
		// the bootstrap admin, is one.
		PlatformTeamID: DefaultTeamID,
		Audit:          cfg.Audit,
		Metrics:        cfg.Metrics,
		Extensions:     extras.Routes,
		Middleware:     extras.Middleware,
		// A key revoked on one control plane is forgotten by the
		// others' key caches through the stream's notices.
		Notices:     cfg.Events,
		KeyCacheTTL: cfg.KeyCacheTTL,
	})
	if err != nil {
		return nil, err
	}
	ucfg := cfg.Usage
	ucfg.Store, ucfg.Hosts, ucfg.Holder = cfg.Store, cfg.Hosts, holder
	ucfg.Logger = cfg.Logger.With("component", "usage")
	meter, err := usage.New(ucfg)
	if err != nil {
		return nil, err
	}
	failures, err := newWorkerFailures(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	return &ControlPlane{cfg: cfg, Life: life, Server: srv, Metrics: cfg.Metrics, Usage: meter, workers: extras.Workers, workerFailures: failures}, nil
}

// Run serves the API on ln and runs the background work until ctx is
// done, then shuts down gracefully: the listener closes, in-flight
// requests get 10 s, the extensions' workers are waited for, background
// lifecycle work gets ShutdownGrace.
func (cp *ControlPlane) Run(ctx context.Context, ln net.Listener) error {
	// A server that stops on its own (its listener failed) stops the
	// background work too, or the wait below would never end.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { cp.Life.Run(ctx) })
	wg.Go(func() { cp.forgetGone(ctx) })
	wg.Go(func() { cp.cfg.Events.Watch(ctx, server.KeysRevokedTopic, cp.Server.ForgetKeys) })
	wg.Go(func() { cp.Usage.Run(ctx) })
	if cp.cfg.Fleet != nil {
		wg.Go(func() { cp.cfg.Fleet.Run(ctx) })
	}
	if cp.cfg.Accounts != nil {
		wg.Go(func() { cp.cfg.Accounts.Run(ctx) })
	}
	wg.Go(func() { cp.cfg.Audit.Run(ctx) })
	wlog := cp.cfg.Logger.With("component", "extensions")
	for _, w := range cp.workers {
		wg.Go(func() { runWorker(ctx, w, wlog, cp.workerFailures) })
	}
	err := cp.Server.Serve(ctx, ln)
	cancel()
	wg.Wait()
	cp.Life.Close(cp.cfg.ShutdownGrace)
	return err
}

// forgetGone drops the server's caches of each capsule that reaches a final
// status, however it got there (destroy, timeout, crash, reconciler). It
// follows the stream through failures (events.Follow): a stream down at
// start or restarted later delays an eviction, never ends them. After a
// gap in the stream (Follow's marker, To == "") the events of capsules
// that ended meanwhile are lost, so each capsule with cached proxies is
// looked up instead, and forgotten unless it still runs.
func (cp *ControlPlane) forgetGone(ctx context.Context) {
	log := cp.cfg.Logger.With("component", "proxy-eviction")
	events.Follow(ctx, cp.cfg.Events, log, func(ev nestbox.CapsuleEvent) {
		switch {
		case ev.To == "":
			cp.forgetNotRunning(ctx, log)
		case ev.To.Final():
			cp.Server.Forget(ev.CapsuleID)
		}
	})
}

// forgetNotRunning forgets each capsule the server holds proxies for that
// is not running, or not in the store. A capsule the store cannot be asked
// about is kept: the next gap or its final event drops it.
func (cp *ControlPlane) forgetNotRunning(ctx context.Context, log *slog.Logger) {
	for _, id := range cp.Server.Proxied() {
		c, err := cp.cfg.Store.GetCapsule(ctx, id)
		switch {
		case errors.Is(err, errdefs.ErrNotFound):
		case err != nil:
			log.Warn("check a proxied capsule after missed events", "capsule", id, "err", err)
			continue
		case c.Status == nestbox.StatusRunning:
			continue
		}
		cp.Server.Forget(id)
	}
}
