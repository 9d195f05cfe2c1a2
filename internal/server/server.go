// Package server is the control plane's HTTP layer: the REST API under /v1,
// its WebSocket streams, the port proxy under /proxy/ and the endpoint host
// agents post their events to. It authenticates, decodes, calls the
// lifecycle service or a capsule's envd, and encodes; the logic lives in
// internal/lifecycle. routes.go maps the whole surface.
//
// Imported by internal/controlplane.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nestbox.dev/internal/account"
	"nestbox.dev/internal/audit"
	"nestbox.dev/internal/e2bcompat"
	"nestbox.dev/internal/envdclient"
	"nestbox.dev/internal/fleet"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/metrics"
	"nestbox.dev/internal/store"
	teamsvc "nestbox.dev/internal/team"
)

// Config configures a Server. Lifecycle and Store are required.
type Config struct {
	Lifecycle *lifecycle.Service
	Store     store.Store
	Logger    *slog.Logger
	// HostTokens authenticate the host agent HostID posting events
	// (Authorization: Bearer), any one of them; none refuses every host
	// event, and an empty one authenticates nothing. An event they
	// authenticate may name only HostID and that host's capsules.
	HostTokens []string
	// HostID is the host HostTokens belong to; "" refuses every host
	// event.
	HostID string
	// Fleet, if not nil, is the registry of a fleet's hosts: the
	// /v1/hosts routes serve it, and agents that name their host
	// (Nestbox-Host-ID) are authenticated by it. Nil: one host, the
	// host routes answer 501.
	Fleet *fleet.Registry
	// MaxBodyBytes bounds JSON request bodies; zero means 1 MiB. File
	// uploads are streamed and not bounded by it.
	MaxBodyBytes int64
	// Domain is the sandbox domain of host routing ({port}-{id}.{Domain})
	// and what E2B's SDKs are told; "" routes only {port}-{id}.localhost
	// and tells SDKs none.
	Domain string
	// PublicURL is where clients reach the API, e.g.
	// "https://nestbox.example.com". Its origin is the one browser Origin
	// the API's WebSockets accept ("" accepts only an Origin whose host is
	// the request's Host), and its host may carry E2B's sandbox headers.
	PublicURL string
	// TrafficRate and TrafficBurst bound, per client address, the requests
	// routed to capsules without an API key (E2B's routing headers, host
	// names, signed URLs); beyond them the answer is 429. Zero means 200
	// per second with a burst of 400; a negative TrafficRate, no limit.
	TrafficRate  float64
	TrafficBurst int
	// ExecOutputBytes bounds what a one-shot exec keeps of stdout and of
	// stderr each; zero means 8 MiB. ExecOutputTotalBytes bounds that
	// output across all one-shot execs in flight; zero means 256 MiB. Output
	// beyond either is dropped and the answer flags it
	// (stdout_truncated, stderr_truncated).
	ExecOutputBytes      int
	ExecOutputTotalBytes int64
	// MaxKeysPerTeam bounds the API keys a team may hold; a create at the
	// limit is 429 (resource_exhausted). Zero means 100.
	MaxKeysPerTeam int
	// Accounts, if not nil, serves sign-up, log-in and sessions (the
	// /v1/auth routes, which answer 501 without it); sessions are then
	// accepted wherever API keys are.
	Accounts *account.Service
	// Teams, if not nil, serves teams, members and invitations (the
	// /v1/teams routes, which answer 501 without it), and its role rule
	// decides who may mint API keys.
	Teams *teamsvc.Service
	// PlatformTeamID is the team whose API keys act as platform admin
	// when the user who made them is one (the bootstrap's default team);
	// "" lets only admins' sessions in.
	PlatformTeamID string
	// AuthPerAddress and AuthPerAccount bound sign-up, log-in and reset
	// attempts a minute per client address and per email; beyond them
	// the answer is 429. Zero means 10 and 5; negative, no limit.
	AuthPerAddress, AuthPerAccount int
	// Ready, if not nil, holds every request off with 503 until it is
	// closed: the platform is still setting up (building templates).
	Ready <-chan struct{}
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Audit is the audit log the API's changes are recorded in and
	// GET /v1/audit-logs reads; nil means a Logger over Store with its
	// defaults.
	Audit *audit.Logger
	// Metrics is the registry the API's request metrics are registered
	// on (nestbox_http_*); nil registers them nowhere. One Server per
	// registry: a second one's New fails on the duplicate names.
	Metrics prometheus.Registerer
	// Extensions are routes a program embedding the control plane adds
	// (extensions.go): served after the core's, behind the same
	// authentication. Middleware wraps every request of the API, the first
	// outermost, before routing and authentication.
	Extensions []ExtensionRoute
	Middleware []func(http.Handler) http.Handler
	// KeyCacheTTL is how long an API key found in the store is trusted
	// without asking it again; zero means 3 s, negative no cache.
	// KeyCacheSize bounds the keys kept; zero means 10,000. Revoking a
	// key forgets the cache at once here and, through Notices, on every
	// other control plane (keycache.go).
	KeyCacheTTL  time.Duration
	KeyCacheSize int
	// Notices, if not nil, carries the notice that API keys were revoked
	// (KeysRevokedTopic) to every control plane; each runs
	// events.Stream.Watch of that topic with ForgetKeys. Nil: one control
	// plane, nobody else to tell.
	Notices notifier
}

// Server serves the control plane's HTTP API. Create it with New.
type Server struct {
	cfg   Config
	log   *slog.Logger
	life  *lifecycle.Service
	store store.Store

	// envd is the HTTP client for capsules' envd, through the agents'
	// proxies: request-response RPCs and file streams. An envd client
	// over it is a few allocations, made per request.
	envd *http.Client
	// e2b serves E2B's dialect of the API.
	e2b *e2bcompat.API
	// proxy forwards the port proxy's traffic; its own transport, so that
	// heavy proxied traffic cannot starve exec and terminal streams.
	proxy *portProxy
	// domain is Config.Domain's host; publicHost and publicOrigin are
	// Config.PublicURL's host and scheme://host (all lower-cased, "" when
	// not configured).
	domain, publicHost, publicOrigin string
	// tokens finds the capsule of a header-less signed URL.
	tokens *tokenIndex
	// limiter bounds sandbox traffic per client address; nil: no limit.
	limiter *ipLimiter
	// output is the byte budget of one-shot exec output.
	output *byteBudget
	// authLimits bound log-in and reset attempts.
	authLimits authLimits
	// metrics counts and times the API's requests.
	metrics *httpMetrics
	// ext serves the extensions' routes; nil without any.
	ext *http.ServeMux
	// keys caches the API keys requests present; nil: no cache.
	keys *keyCache
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Lifecycle == nil || cfg.Store == nil {
		return nil, errors.New("server: Lifecycle and Store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Audit == nil {
		var err error
		if cfg.Audit, err = audit.New(audit.Config{Store: cfg.Store, Logger: cfg.Logger.With("component", "audit"), Now: cfg.Now}); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	if cfg.ExecOutputBytes == 0 {
		cfg.ExecOutputBytes = defaultExecOutput
	}
	if cfg.ExecOutputTotalBytes == 0 {
		cfg.ExecOutputTotalBytes = defaultExecOutputTotal
	}
	if cfg.MaxKeysPerTeam == 0 {
		cfg.MaxKeysPerTeam = defaultMaxKeysPerTeam
	}
	if cfg.ExecOutputBytes < 0 || cfg.ExecOutputTotalBytes < 0 {
		return nil, errors.New("server: ExecOutputBytes and ExecOutputTotalBytes must not be negative")
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		life:    cfg.Lifecycle,
		store:   cfg.Store,
		envd:    &http.Client{Transport: newTransport()},
		domain:  domainHost(cfg.Domain),
		tokens:  newTokenIndex(cfg.Lifecycle, cfg.Now),
		limiter: newIPLimiter(cfg.TrafficRate, cfg.TrafficBurst, cfg.Now),
		output:  newByteBudget(cfg.ExecOutputTotalBytes),

		authLimits: newAuthLimits(cfg.AuthPerAddress, cfg.AuthPerAccount, cfg.Now),
		keys:       newKeyCache(cfg.KeyCacheTTL, cfg.KeyCacheSize, cfg.Now),
	}
	var err error
	if s.metrics, err = newHTTPMetrics(metrics.OrDiscard(cfg.Metrics)); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("server: PublicURL %q: want http(s)://host[:port]", cfg.PublicURL)
		}
		s.publicOrigin = strings.ToLower(u.Scheme + "://" + u.Host)
		s.publicHost = domainHost(u.Host)
	}
	s.proxy = newPortProxy(s)
	s.e2b = e2bcompat.New(e2bcompat.Config{
		Lifecycle: cfg.Lifecycle,
		Authenticate: func(r *http.Request) (context.Context, string, error) {
			p, err := s.authenticate(r)
			return context.WithValue(r.Context(), principalKey{}, p), p.TeamID, err
		},
		Record: func(r *http.Request, action, resourceID string, err error) {
			s.record(r, teamEntry(action, resourceID, map[string]string{"api": "e2b"}), err)
		},
		Domain: cfg.Domain,
		Logger: cfg.Logger.With("api", "e2b"),
		Now:    cfg.Now,
	})
	if s.ext, err = s.extensionMux(); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return s, nil
}

// newTransport is an HTTP/1.1 transport to the agents: no head-of-line
// blocking between unrelated streams, and a response-header timeout of
// minutes (a large upload is acknowledged only at its end).
func newTransport() *http.Transport {
	var p http.Protocols
	p.SetHTTP1(true)
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		Protocols:             &p,
	}
}

// HTTPServer returns an http.Server for Handler with the control plane's
// timeouts: a slow client cannot hold a connection without sending
// headers, and idle keep-alive connections are closed. There is no write
// timeout: exec output, terminals and downloads stream for as long as they
// last.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// Serve serves on ln until ctx is done, then shuts down gracefully:
// in-flight requests get 10 s to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := s.HTTPServer()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	<-errc
	return err
}

// envdFor returns a client of a running capsule's envd.
// maxOutput bounds what its Run keeps of each output stream (zero: the
// client's default).
func (s *Server) envdFor(c store.Capsule, h lifecycle.Host, maxOutput int) *envdclient.Client {
	return envdclient.New(envdclient.Config{
		BaseURL:        h.ProxyURL + "/proxy/" + c.ID + "/" + strconv.Itoa(envdPort),
		AccessToken:    c.AccessToken,
		HTTPClient:     &http.Client{Transport: h.Transport(s.envd.Transport)},
		MaxOutputBytes: maxOutput,
	})
}

// Forget drops the port proxies of a capsule and cuts the requests still
// streaming to it. The control plane calls it when a capsule reaches a
// final status.
func (s *Server) Forget(id string) {
	s.proxy.evict(id)
	s.tokens.forget(id)
}

// Proxied returns the IDs of the capsules the server holds port proxies
// for: what Forget would drop. The control plane checks them against the
// store after missing events, when a capsule may have ended unseen.
func (s *Server) Proxied() []string {
	return s.proxy.capsules()
}
