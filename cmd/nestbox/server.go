package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"nestbox.dev/internal/agent"
	"nestbox.dev/internal/fleet"
	nbplatform "nestbox.dev/platform"
)

// runServer is `nestbox server`: the control plane alone, in front of one
// host agent given by --agent-url, or, without it, of a fleet whose
// agents join it (`nestbox agent --control-plane URL --join-token-file F`).
func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("nestbox server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		dataDir, listen, agentURL, publicURL, domain string
		agentTokenFile, agentCA, metricsListen       string
		databaseURL, redisURL                        string
		reconcile, heartbeat                         time.Duration
		logLevel                                     slog.Level
	)
	fs.StringVar(&dataDir, "data-dir", env("NESTBOX_DATA_DIR", "/var/lib/nestbox"), "state directory: database, credentials, host token (env NESTBOX_DATA_DIR)")
	fs.StringVar(&listen, "listen", env("NESTBOX_LISTEN", "127.0.0.1:8080"), "address of the API (env NESTBOX_LISTEN)")
	fs.StringVar(&agentURL, "agent-url", env("NESTBOX_AGENT_URL", ""), "base URL of the host agent, e.g. http://10.0.0.5:5007 (env NESTBOX_AGENT_URL); start it with --events-token-file pointing at a copy of <data-dir>/host-token")
	fs.StringVar(&agentTokenFile, "agent-token-file", env("NESTBOX_AGENT_TOKEN_FILE", ""), "a copy (mode 0600) of the agent's <agent-data-dir>/agent-token: the token the agent requires (env NESTBOX_AGENT_TOKEN_FILE; or the token itself in env NESTBOX_AGENT_TOKEN)")
	fs.StringVar(&agentCA, "agent-ca", env("NESTBOX_AGENT_CA", ""), "PEM file of the CA (or the certificate itself) that signed the agent's --tls-cert, for an https --agent-url (env NESTBOX_AGENT_CA; default: the system's roots)")
	fs.StringVar(&publicURL, "public-url", env("NESTBOX_PUBLIC_URL", ""), "URL clients reach the API at, saved for the CLI (env NESTBOX_PUBLIC_URL)")
	fs.StringVar(&databaseURL, "database-url", env("NESTBOX_DATABASE_URL", ""), "PostgreSQL URL, e.g. postgres://nestbox@db/nestbox (env NESTBOX_DATABASE_URL; default: SQLite in the data directory)")
	fs.StringVar(&redisURL, "redis-url", env("NESTBOX_REDIS_URL", ""), "Redis URL for the event stream, e.g. redis://127.0.0.1:6379/0 (env NESTBOX_REDIS_URL; default: in-process)")
	fs.StringVar(&domain, "domain", env("NESTBOX_DOMAIN", ""), "sandbox domain for {port}-{id}.<domain> host routing and E2B's SDKs (env NESTBOX_DOMAIN)")
	fs.DurationVar(&reconcile, "reconcile-interval", 60*time.Second, "how often the control plane reconciles with the agents")
	fs.DurationVar(&heartbeat, "heartbeat-interval", fleet.DefaultHeartbeatInterval, "how often a fleet's agents heartbeat; a host is unreachable after three intervals without one")
	fs.TextVar(&logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	metricsFlag(fs, &metricsListen)
	lf := registerLimitFlags(fs, true)
	mf := registerMailFlags(fs)
	af := registerAuditFlags(fs)
	uf := registerUsageFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	limits, err := lf.limits()
	if err != nil {
		return err
	}
	ucfg, err := uf.config()
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	agentToken := os.Getenv("NESTBOX_AGENT_TOKEN")
	if agentURL == "" {
		if agentToken != "" || agentTokenFile != "" {
			return errors.New("an agent token without --agent-url: a fleet's agents are issued their tokens when they join")
		}
	} else if agentToken == "" {
		if agentTokenFile == "" {
			return errors.New("no agent token: copy the agent's <agent-data-dir>/agent-token to this machine (mode 0600) and pass --agent-token-file, or set env NESTBOX_AGENT_TOKEN")
		}
		var err error
		if agentToken, err = agent.ReadTokenFile(agentTokenFile); err != nil {
			return fmt.Errorf("--agent-token-file: %w", err)
		}
	} else if err := agent.CheckToken(agentToken); err != nil {
		return fmt.Errorf("NESTBOX_AGENT_TOKEN: %w", err)
	}
	var agentTLS *tls.Config
	if agentCA != "" {
		pem, err := os.ReadFile(agentCA)
		if err != nil {
			return fmt.Errorf("--agent-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--agent-ca: no PEM certificate in %s", agentCA)
		}
		agentTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	pcfg := nbplatform.Config{
		DataDir:            dataDir,
		DatabaseURL:        databaseURL,
		RedisURL:           redisURL,
		Listener:           ln,
		PublicURL:          publicURL,
		Domain:             domain,
		Logger:             log,
		HeartbeatInterval:  heartbeat,
		AgentTLS:           agentTLS,
		ReconcileInterval:  reconcile,
		Limits:             limits,
		UsageInterval:      ucfg.Interval,
		UsageRetentionDays: ucfg.RetentionDays,
	}
	if agentURL != "" {
		pcfg.Agent = &nbplatform.Agent{URL: agentURL, Token: agentToken}
	}
	if err := mf.apply(&pcfg, log); err != nil {
		return err
	}
	af.apply(&pcfg)
	p, err := nbplatform.New(ctx, pcfg)
	if err != nil {
		return err
	}
	defer p.Close()
	key, publicURL := p.NewKey(), p.URL()
	if key != "" {
		fmt.Fprintf(stdout, "API key: %s (shown once; saved in %s)\n", key, filepath.Join(dataDir, "credentials.json"))
	}
	if agentURL == "" {
		log.Info("control plane listening; hosts join it with a token from `nestbox host token create`", "url", publicURL)
	} else {
		log.Info("control plane listening", "url", publicURL, "agent", agentURL)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	if err := serveMetrics(ctx, &wg, metricsListen, p.Metrics(), log); err != nil {
		return err
	}
	err = p.Run(ctx)
	cancel()
	return err
}
