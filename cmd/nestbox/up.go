package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/agent"
	"nestbox.dev/internal/cli"
	"nestbox.dev/internal/controlplane"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/metrics"
	cpusage "nestbox.dev/internal/usage"
	nbplatform "nestbox.dev/platform"
)

// upConfig is what `nestbox up` runs with.
type upConfig struct {
	dataDir, listen, agentListen, publicURL, domain string
	databaseURL, redisURL                           string
	// metricsListen serves the process's metrics (agent and control
	// plane together); "" serves them nowhere.
	metricsListen string
	templates     []string
	reconcile     time.Duration
	logLevel      slog.Level
	agent         agent.Config
	// limits are the control plane's limits on capsules. Their EgressDeny
	// is the agent's --egress-deny, so that both refuse the same.
	limits lifecycle.Limits
	// mail chooses the account service's Mailer.
	mail *mailFlags
	// audit configures the audit log.
	audit *auditFlags
	// usage configures usage accounting.
	usage cpusage.Config
}

// runUp is `nestbox up`: the whole platform on this machine in one
// process: the control plane (SQLite in the data directory, an in-process
// event stream) and a host agent with the gVisor driver.
func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseUpFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return err
	}
	hostToken, err := controlplane.HostToken(cfg.dataDir)
	if err != nil {
		return fmt.Errorf("host token: %w", err)
	}
	// The agent and the control plane share its token through the file.
	agentToken, _, err := agent.TokenFile(filepath.Join(cfg.dataDir, "agent-token"))
	if err != nil {
		return err
	}
	// Listen first: the agent's events and the printed URL need the real
	// address, and /health answers 503 while templates are built.
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	local := "http://" + loopbackAddr(ln.Addr())
	if cfg.publicURL == "" {
		cfg.publicURL = local
	}
	agentLn, err := net.Listen("tcp", cfg.agentListen)
	if err != nil {
		return fmt.Errorf("agent listener: %w", err)
	}
	defer agentLn.Close()

	acfg := cfg.agent
	acfg.EventsURL = local + "/v1/hosts/sandbox-events"
	acfg.EventsToken = hostToken
	acfg.HostID = "local"
	acfg.Token = agentToken
	acfg.Logger = log.With("component", "agent")
	progress := &quietWriter{w: stderr}
	acfg.Progress = progress
	// One registry for the process: the agent's and the control
	// plane's metrics side by side.
	reg := metrics.NewRegistry()
	acfg.Metrics = reg
	a, err := agent.New(ctx, acfg)
	if err != nil {
		return err
	}

	ready := make(chan struct{})
	pcfg := nbplatform.Config{
		DataDir:            cfg.dataDir,
		DatabaseURL:        cfg.databaseURL,
		RedisURL:           cfg.redisURL,
		Listener:           ln,
		PublicURL:          cfg.publicURL,
		Domain:             cfg.domain,
		Logger:             log,
		Agent:              &nbplatform.Agent{URL: "http://" + loopbackAddr(agentLn.Addr()), Token: agentToken},
		ReconcileInterval:  cfg.reconcile,
		Limits:             cfg.limits,
		UsageInterval:      cfg.usage.Interval,
		UsageRetentionDays: cfg.usage.RetentionDays,
		Ready:              ready,
		Metrics:            reg,
	}
	if err := cfg.mail.apply(&pcfg, log); err != nil {
		return err
	}
	cfg.audit.apply(&pcfg)
	cp, err := nbplatform.New(ctx, pcfg)
	if err != nil {
		return err
	}
	defer cp.Close()
	newKey := cp.NewKey()
	if newKey == "" {
		// Keep the saved URL in step with where the platform now listens.
		if _, key, err := nestbox.LoadCredentials(cfg.dataDir); err == nil {
			cli.WriteCredentials(cfg.dataDir, cfg.publicURL, key)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if err := serveMetrics(ctx, &wg, cfg.metricsListen, reg, log); err != nil {
		return err
	}
	errc := make(chan error, 2)
	wg.Go(func() {
		a.Run(ctx)
		a.DrainPools(context.WithoutCancel(ctx))
	})
	wg.Go(func() { errc <- a.Serve(ctx, agentLn) })
	wg.Go(func() { errc <- cp.Run(ctx) })

	// The first template (minimal, built in about a second) is built
	// before the API serves; the others build in the background. A create
	// for a template still building waits for its build (the template
	// store serialises builds), bounded by the request's context.
	first, rest := splitTemplates(cfg.templates)
	if first != "" {
		if err := a.EnsureTemplates(ctx, first); err != nil {
			cancel()
			wg.Wait()
			return err
		}
	}
	close(ready)
	rest = a.TemplatesToBuild(rest...)
	if len(rest) > 0 {
		wg.Go(func() {
			if err := a.EnsureTemplates(ctx, rest...); err != nil && ctx.Err() == nil {
				log.Error("background template build", "err", err)
			}
		})
	}
	// What the background builds report after this is in their logs: the
	// welcome stays the last thing printed.
	progress.quiet()
	printWelcome(stdout, cfg, newKey, rest, templateLog(cfg, rest))

	select {
	case <-ctx.Done():
	case err = <-errc:
		log.Error("stopping", "err", err)
	}
	cancel()
	wg.Wait()
	return err
}

func printWelcome(w io.Writer, cfg upConfig, newKey string, building []string, buildLogs []string) {
	creds := filepath.Join(cfg.dataDir, "credentials.json")
	fmt.Fprintf(w, "Nestbox is up.\n")
	if len(building) > 0 {
		what := "Template " + building[0] + " is"
		if len(building) > 1 {
			what = "Templates " + strings.Join(building, ", ") + " are"
		}
		fmt.Fprintf(w, "  %s being built in the background (output in %s);\n  a capsule created from it waits until it is ready.\n",
			what, strings.Join(buildLogs, ", "))
	}
	cmd := cliCommand()
	fmt.Fprintf(w, "  API URL: %s\n", cfg.publicURL)
	if newKey != "" {
		fmt.Fprintf(w, "  API key: %s\n           (shown once; saved in %s for the CLI on this machine)\n", newKey, creds)
	} else {
		fmt.Fprintf(w, "  API key: in %s\n", creds)
	}
	fmt.Fprintf(w, "Try:\n  %s capsule create\n  %s capsule exec <id> -- uname -a\n", cmd, cmd)
}

// loopbackAddr is the address this machine reaches a listener at
// (nbplatform.LoopbackAddr).
func loopbackAddr(addr net.Addr) string { return nbplatform.LoopbackAddr(addr) }

func parseUpFlags(args []string, stderr io.Writer) (upConfig, error) {
	fs := flag.NewFlagSet("nestbox up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: nestbox up [flags]\n\nRuns the whole platform on this machine: the control plane (API on --listen,\nSQLite in --data-dir) and a host agent with gVisor. The first start creates an\nadmin, a default team and an API key, prints them and saves them in\n<data-dir>/credentials.json for the CLI.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var cfg upConfig
	var templates string
	fs.StringVar(&cfg.dataDir, "data-dir", env("NESTBOX_DATA_DIR", "/var/lib/nestbox"), "state directory: database, credentials, sandboxes, templates (env NESTBOX_DATA_DIR)")
	fs.StringVar(&cfg.listen, "listen", env("NESTBOX_LISTEN", "127.0.0.1:8080"), "address of the API (env NESTBOX_LISTEN); use 0.0.0.0:8080 to serve other machines")
	fs.StringVar(&cfg.agentListen, "agent-listen", env("NESTBOX_AGENT_LISTEN", "127.0.0.1:5007"), "address of the host agent's API, for this machine only (env NESTBOX_AGENT_LISTEN)")
	fs.StringVar(&cfg.publicURL, "public-url", env("NESTBOX_PUBLIC_URL", ""), "URL clients reach the API at, saved for the CLI (env NESTBOX_PUBLIC_URL; default http://<listen>)")
	fs.StringVar(&cfg.domain, "domain", env("NESTBOX_DOMAIN", ""), "sandbox domain: {port}-{id}.<domain> reaches a port of a capsule, and E2B's SDKs build getHost() from it (env NESTBOX_DOMAIN; default: any host name of that shape is routed, and SDKs use their E2B_DOMAIN)")
	fs.StringVar(&cfg.databaseURL, "database-url", env("NESTBOX_DATABASE_URL", ""), "PostgreSQL URL (env NESTBOX_DATABASE_URL; default: SQLite in the data directory)")
	fs.StringVar(&cfg.redisURL, "redis-url", env("NESTBOX_REDIS_URL", ""), "Redis URL for the event stream (env NESTBOX_REDIS_URL; default: in-process)")
	fs.StringVar(&templates, "templates", env("NESTBOX_TEMPLATES", "base,minimal"), "templates to build at start: the first one (minimal first when listed) before serving, the others in the background (env NESTBOX_TEMPLATES)")
	fs.DurationVar(&cfg.reconcile, "reconcile-interval", 60*time.Second, "how often the control plane reconciles with the agent")
	fs.TextVar(&cfg.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	metricsFlag(fs, &cfg.metricsListen)
	af := registerAgentFlags(fs)
	lf := registerLimitFlags(fs, false)
	cfg.mail = registerMailFlags(fs)
	cfg.audit = registerAuditFlags(fs)
	uf := registerUsageFlags(fs)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	var err error
	if cfg.limits, err = lf.limits(); err != nil {
		return cfg, err
	}
	if cfg.usage, err = uf.config(); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if cfg.reconcile < time.Second {
		return cfg, errors.New("--reconcile-interval must be at least 1s")
	}
	for _, t := range strings.Split(templates, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.templates = append(cfg.templates, t)
		}
	}
	abs, err := filepath.Abs(cfg.dataDir)
	if err != nil {
		return cfg, err
	}
	cfg.dataDir = abs
	af.runscDataDir = abs
	if cfg.agent, err = af.config(filepath.Join(abs, "agent")); err != nil {
		return cfg, err
	}
	// The control plane refuses at create what the agent would refuse.
	cfg.limits.EgressDeny = cfg.agent.EgressDeny
	cfg.publicURL = strings.TrimRight(cfg.publicURL, "/")
	return cfg, nil
}
