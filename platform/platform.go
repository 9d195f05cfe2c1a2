// Package platform runs a Nestbox control plane inside a Go program: the
// REST API, its database and event stream, the lifecycle of capsules over
// one host agent or a fleet, accounts and teams, the audit log, usage and
// mail, and the extensions the program adds (extra routes behind the same
// authentication, middleware, background workers). It is the one way to
// start a control plane: `nestbox up` and `nestbox server` go through it
// too.
//
//	p, err := platform.New(ctx, platform.Config{
//		DataDir:    "/var/lib/myplatform",
//		Agent:      &platform.Agent{URL: "http://127.0.0.1:5007", Token: agentToken},
//		Extensions: []platform.Extension{billing},
//	})
//	if err != nil { ... }
//	defer p.Close()
//	err = p.Run(ctx) // until ctx is done
//
// Programs outside this module import it (and the Go SDK, nestbox.dev);
// the types it hands to extensions are aliases of the control plane's own,
// named here (types.go). docs/extensions.md describes it.
package platform

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nestbox.dev"
	"nestbox.dev/internal/account"
	"nestbox.dev/internal/agent"
	"nestbox.dev/internal/audit"
	"nestbox.dev/internal/cli"
	"nestbox.dev/internal/controlplane"
	"nestbox.dev/internal/events"
	"nestbox.dev/internal/events/memory"
	redisevents "nestbox.dev/internal/events/redis"
	"nestbox.dev/internal/fleet"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/mail"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/postgres"
	"nestbox.dev/internal/store/sqlite"
	"nestbox.dev/internal/team"
	"nestbox.dev/internal/usage"
)

// Config configures a Platform. DataDir is required; every other zero
// field is a documented default.
type Config struct {
	// DataDir holds the control plane's state on this machine: the SQLite
	// database (without DatabaseURL), credentials.json with the API key
	// the first start makes, the key that signs mailed links and the
	// token host agents post their events with. Made (0700) if missing.
	DataDir string
	// DatabaseURL, if set (postgres://...), keeps the state in PostgreSQL
	// instead of SQLite.
	DatabaseURL string
	// RedisURL, if set (redis://...), carries capsule events over Redis
	// Streams instead of in process (needed by several control planes
	// over one database).
	RedisURL string

	// Listener serves the API; nil listens on Listen ("" means
	// 127.0.0.1:8080). Run closes it.
	Listener net.Listener
	Listen   string
	// PublicURL is where clients reach the API, written into mailed links
	// and credentials.json; "" means http:// and the listener's address.
	PublicURL string
	// Domain is the sandbox domain: {port}-{id}.<Domain> reaches a port
	// of a capsule, and E2B's SDKs are told it.
	Domain string
	// Logger receives the control plane's logs; nil discards them.
	Logger *slog.Logger

	// Agent is the one host agent the control plane drives. Nil serves a
	// fleet instead: agents join with a token from `nestbox host token
	// create` and heartbeat every HeartbeatInterval (zero: 5 s).
	Agent             *Agent
	HeartbeatInterval time.Duration
	// AgentTLS verifies https agents (Agent's, and a fleet's); nil means
	// the system's roots.
	AgentTLS *tls.Config

	// ReconcileInterval is how often the control plane reconciles with
	// the agents; zero means 60 s.
	ReconcileInterval time.Duration
	// Limits are the operator's limits on tenants' capsules; zero fields
	// are the defaults (docs/security.md).
	Limits Limits
	// UsageInterval is how often running capsules' usage is sampled
	// (zero: 30 s); UsageRetentionDays how many whole days of samples
	// are kept before today (zero: 7).
	UsageInterval      time.Duration
	UsageRetentionDays int
	// AuditRetention is how long audit entries are kept; zero means 400
	// days, negative forever. AuditMaxTeamEntries is how many of its own
	// (scope team) entries a team keeps, its oldest beyond them deleted;
	// zero means 200,000, negative no cap. Both are enforced at start and
	// every hour, by one control plane of those sharing a database.
	AuditRetention      time.Duration
	AuditMaxTeamEntries int
	// Mailer sends account mail (verification, reset, invitations); nil
	// writes mails to Logger, links included, for development.
	Mailer Mailer
	// LinkKey signs mailed links (at least 32 bytes); nil means the one
	// in <DataDir>/link-key, made on first start. Control planes sharing
	// a database must share it.
	LinkKey []byte
	// Ready, if not nil, holds API requests off with 503 until closed.
	Ready <-chan struct{}
	// Metrics is the registry the control plane's metrics go on; nil
	// makes one (Platform.Metrics). The API does not serve it.
	Metrics *prometheus.Registry

	// Extensions add routes, middleware and workers, set up in order by
	// New (extension.go).
	Extensions []Extension
}

// Agent is the one host agent of a control plane.
type Agent struct {
	// URL is the agent's base URL, e.g. http://127.0.0.1:5007. Required.
	URL string
	// Token is the token the agent requires (its
	// <agent-data-dir>/agent-token). Required. The agent's events are
	// accepted with the token derived from it or with
	// <DataDir>/host-token.
	Token string
}

// Platform is a control plane, assembled by New and served by Run.
type Platform struct {
	cfg    Config
	ln     net.Listener
	st     store.Store
	ev     events.Stream
	cp     *controlplane.ControlPlane
	newKey string
	// closers undo what New opened, last first.
	closers []func() error
}

// New opens the control plane's database and event stream, makes the
// first admin, team and API key of a new installation, assembles the
// services, and sets up each extension. On an error it closes what it
// opened. Close releases what it opened once Run has returned (or if
// Run is never called).
func New(ctx context.Context, cfg Config) (_ *Platform, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("platform: DataDir is required")
	}
	if cfg.Agent != nil && (cfg.Agent.URL == "" || cfg.Agent.Token == "") {
		return nil, errors.New("platform: Agent needs its URL and Token")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger
	p := &Platform{cfg: cfg}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	hostToken, err := controlplane.HostToken(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("host token: %w", err)
	}
	p.ln = cfg.Listener
	if p.ln == nil {
		addr := cfg.Listen
		if addr == "" {
			addr = "127.0.0.1:8080"
		}
		if p.ln, err = net.Listen("tcp", addr); err != nil {
			return nil, err
		}
		p.closers = append(p.closers, p.ln.Close)
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + LoopbackAddr(p.ln.Addr())
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	p.cfg = cfg

	if p.st, err = openStore(ctx, cfg.DataDir, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, p.st.Close)
	if p.ev, err = openEvents(ctx, cfg.RedisURL, log); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, p.ev.Close)
	if p.newKey, err = controlplane.Bootstrap(ctx, p.st, func(key string) error {
		return cli.WriteCredentials(cfg.DataDir, cfg.PublicURL, key)
	}); err != nil {
		return nil, err
	}

	auditLog, err := audit.New(audit.Config{Store: p.st, Retention: cfg.AuditRetention, MaxTeamEntries: cfg.AuditMaxTeamEntries, Logger: log.With("component", "audit")})
	if err != nil {
		return nil, err
	}
	mailer := cfg.Mailer
	if mailer == nil {
		log.Warn("no mailer: account mails (verification and reset links) are written to this log; configure SMTP for a platform with users other than you")
		mailer = mail.Log{Logger: log.With("component", "mail")}
	}
	linkKey := cfg.LinkKey
	if linkKey == nil {
		if linkKey, err = controlplane.LinkKey(cfg.DataDir); err != nil {
			return nil, err
		}
	} else if len(linkKey) < 32 {
		return nil, fmt.Errorf("platform: LinkKey holds %d bytes, want at least 32", len(linkKey))
	}
	accounts, teams, err := newAccounts(p.st, mailer, linkKey, cfg.PublicURL, auditLog, log)
	if err != nil {
		return nil, err
	}

	ccfg := controlplane.Config{
		Store:             p.st,
		Events:            p.ev,
		Logger:            log,
		ReconcileInterval: cfg.ReconcileInterval,
		Domain:            cfg.Domain,
		PublicURL:         cfg.PublicURL,
		Ready:             cfg.Ready,
		Accounts:          accounts,
		Teams:             teams,
		Limits:            cfg.Limits,
		Audit:             auditLog,
		Metrics:           cfg.Metrics,
		Usage:             usage.Config{Interval: cfg.UsageInterval, RetentionDays: cfg.UsageRetentionDays},
	}
	if a := cfg.Agent; a != nil {
		ccfg.Hosts = controlplane.NewSingleHost(controlplane.HostConfig{ID: "local", URL: a.URL, Token: a.Token, TLS: cfg.AgentTLS})
		// The agent posts its events with the token derived from its
		// own (a split deployment copies one file, the agent token), or
		// with a copy of <DataDir>/host-token.
		ccfg.HostTokens = []string{agent.EventsToken(a.Token), hostToken}
	} else {
		tlsConfig := cfg.AgentTLS
		ccfg.Fleet = fleet.New(fleet.Config{
			Store:             p.st,
			Logger:            log.With("component", "fleet"),
			HeartbeatInterval: cfg.HeartbeatInterval,
			Connect: func(id, url, token string) lifecycle.Host {
				return controlplane.HostClient(controlplane.HostConfig{ID: id, URL: url, Token: token, TLS: tlsConfig})
			},
		})
	}

	// The extensions are set up inside controlplane.New, once the
	// lifecycle service they are given exists and before the HTTP server
	// that serves their routes is made.
	ccfg.Extend = func(life *lifecycle.Service) (controlplane.Extras, error) {
		var all controlplane.Extras
		names := map[string]bool{}
		for _, ext := range cfg.Extensions {
			if names[ext.Name] {
				return all, fmt.Errorf("platform: two extensions named %q", ext.Name)
			}
			names[ext.Name] = true
			x, err := p.setUp(ext, services{store: p.st, audit: auditLog, mailer: mailer, life: life, log: log})
			if err != nil {
				return all, err
			}
			all.Routes = append(all.Routes, x.routes...)
			all.Middleware = append(all.Middleware, x.middleware...)
			all.Workers = append(all.Workers, x.workers...)
		}
		return all, nil
	}
	if p.cp, err = controlplane.New(ccfg); err != nil {
		return nil, err
	}
	return p, nil
}

// Run serves the API and runs the background work, the extensions'
// workers included, until ctx is done; then it shuts down gracefully
// (in-flight requests get 10 s, every worker is waited for) and returns.
// Call it once.
func (p *Platform) Run(ctx context.Context) error {
	return p.cp.Run(ctx, p.ln)
}

// Close closes the event stream and the database (and the listener New
// opened), after Run has returned.
func (p *Platform) Close() error {
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		if err := p.closers[i](); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	p.closers = nil
	return errors.Join(errs...)
}

// URL is where clients reach the API: Config.PublicURL, or the
// listener's address.
func (p *Platform) URL() string { return p.cfg.PublicURL }

// NewKey is the API key of the default team that this start made (a new
// installation), also saved in <DataDir>/credentials.json; "" when the
// installation already had one.
func (p *Platform) NewKey() string { return p.newKey }

// Metrics is the registry the control plane's metrics are on, for the
// operator to serve on a listener of its own.
func (p *Platform) Metrics() *prometheus.Registry { return p.cp.Metrics }

// CredentialsPath is where New saves the first API key of an
// installation whose state is in dataDir.
func CredentialsPath(dataDir string) string { return filepath.Join(dataDir, "credentials.json") }

// LoopbackAddr is addr with an unspecified IP replaced by 127.0.0.1: the
// address this machine reaches a wildcard listener at.
func LoopbackAddr(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
}

// openStore opens the control plane's database: PostgreSQL when url is
// set (postgres://...), else the embedded SQLite file in dataDir.
func openStore(ctx context.Context, dataDir, url string) (store.Store, error) {
	if url != "" {
		st, err := postgres.Open(ctx, url)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL: %w", err)
		}
		return st, nil
	}
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, "nestbox.db"))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return st, nil
}

// openEvents opens the event stream: Redis Streams when url is set
// (redis://...), else the in-process stream.
func openEvents(ctx context.Context, url string, log *slog.Logger) (events.Stream, error) {
	if url == "" {
		return memory.New(), nil
	}
	ev, err := redisevents.New(ctx, redisevents.Config{URL: url, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open Redis: %w", err)
	}
	return ev, nil
}

// newAccounts is the account and team services over st. A purge of a
// deleted account anonymises the user's entries in auditLog first, and
// keeps the user if that fails; each team it hands over to a successor is
// recorded in that team's log.
func newAccounts(st store.Store, m mail.Mailer, linkKey []byte, publicURL string, auditLog *audit.Logger, log *slog.Logger) (*account.Service, *team.Service, error) {
	handedOver := func(ctx context.Context, teamID, successor string) {
		// The entry names the successor only: the purged owner's entries
		// are anonymised already, and this one must not name it again.
		err := auditLog.Record(ctx, audit.Entry{Scope: nestbox.AuditScopeTeam, TeamID: teamID, Actor: audit.SystemActor(),
			Action: "member.transfer_ownership", ResourceID: successor, Metadata: map[string]string{"reason": "owner_purged"}})
		if err != nil {
			log.Error("write audit entry", "action", "member.transfer_ownership", "team", teamID, "err", err)
		}
	}
	acc, err := account.New(account.Config{Store: st, Mailer: m, LinkKey: linkKey, PublicURL: publicURL, Logger: log.With("component", "accounts"),
		BeforePurge: auditLog.Anonymise, HandedOver: handedOver})
	if err != nil {
		return nil, nil, err
	}
	tm, err := team.New(team.Config{Store: st, Mailer: m, LinkKey: linkKey, PublicURL: publicURL, Logger: log.With("component", "teams")})
	if err != nil {
		return nil, nil, err
	}
	return acc, tm, nil
}
