// Package e2bcompat is the E2B-compatible dialect of the control plane's
// API: the /sandboxes and /v2/sandboxes endpoints E2B's SDKs call, with
// E2B's field names, status codes and error bodies ({"code": int,
// "message": ...}). It is a translation layer only: every operation goes
// through the same lifecycle service as the native /v1 API. It also knows
// E2B's signed-URL scheme, which the port proxy uses to route header-less
// /files requests. ../shared/e2b-wire.md (beside the repository) has the
// wire facts; docs/e2b.md says what is supported.
//
// Imported by internal/server, which mounts its routes and routes sandbox
// traffic.
package e2bcompat

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"nestbox.dev/internal/lifecycle"
)

// Config configures an API. Lifecycle and Authenticate are required.
type Config struct {
	Lifecycle *lifecycle.Service
	// Authenticate returns the team of a request's API key (X-API-KEY),
	// or an error of kind errdefs.ErrUnauthenticated, and the context the
	// request goes on with (r's, with whatever the caller keeps of who
	// authenticated, for Record).
	Authenticate func(r *http.Request) (ctx context.Context, teamID string, err error)
	// Record, if not nil, records in the audit log an action a request
	// made (or tried: err is its error): "capsule.create", "capsule.pause",
	// "capsule.resume", "capsule.fork", "capsule.destroy",
	// "snapshot.create" or "snapshot.delete", on the resource resourceID.
	Record func(r *http.Request, action, resourceID string, err error)
	// Domain is reported to SDKs as the sandboxes' domain, so that
	// getHost(port) gives {port}-{id}.{Domain}; "" reports none (the
	// SDK's E2B_DOMAIN applies).
	Domain string
	// StartTimeout bounds how long a create waits for its sandbox to run;
	// zero means 5 minutes.
	StartTimeout time.Duration
	Logger       *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// API serves the E2B-compatible endpoints.
type API struct {
	cfg  Config
	life *lifecycle.Service
	log  *slog.Logger
}

// New returns an API.
func New(cfg Config) *API {
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &API{cfg: cfg, life: cfg.Lifecycle, log: cfg.Logger}
}

// Route is one endpoint: a ServeMux pattern and its handler.
type Route struct {
	Pattern string
	Handler http.HandlerFunc
}

// Routes lists the endpoints, each already authenticated.
//
//	POST   /sandboxes, /v2/sandboxes                 201 a running sandbox
//	POST   /sandboxes/{id}/connect, /v2/.../connect  200 (running) or 201 (resumed)
//	POST   /sandboxes/{id}/resume                    201 (resumed); 409 when running
//	GET    /sandboxes/{id}                           200 SandboxDetail
//	DELETE /sandboxes/{id}                           204; 404 when unknown
//	POST   /sandboxes/{id}/timeout                   204
//	POST   /sandboxes/{id}/pause                     204 once paused; 409 when paused
//	GET    /sandboxes/{id}/metrics                   200 [SandboxMetric]
//	GET    /v2/sandboxes                             200 [ListedSandbox] (running and paused), X-Next-Token
//	GET    /sandboxes                                200 [ListedSandbox] (running, unpaged)
//	POST   /sandboxes/{id}/fork                      201 [{sandbox} | {error}], one per fork, once each started or failed
//	POST   /sandboxes/{id}/snapshots                 201 {snapshotID, names} once the snapshot is ready
//	GET    /snapshots                                200 [SnapshotInfo], X-Next-Token
//	DELETE /templates/{id}                           204 deletes a snapshot; 404 when unknown
//
// Prefixes are the paths under which every answer is in E2B's shape: those
// of Routes, and those of E2B's API that Nestbox does not serve (yet), so
// that an SDK calling one gets E2B's 404 body.
func (a *API) Prefixes() []string {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, r := range a.Routes() {
		_, path, _ := strings.Cut(r.Pattern, " ")
		// The prefix is the path up to its first wildcard.
		if i := strings.Index(path, "/{"); i >= 0 {
			path = path[:i]
		}
		add(path)
	}
	for _, p := range unservedPrefixes {
		add(p)
	}
	return out
}

// unservedPrefixes are E2B's API resources Nestbox does not serve yet.
var unservedPrefixes = []string{"/templates", "/v2/templates", "/v3/templates", "/snapshots", "/volumes", "/teams", "/secrets"}

func (a *API) Routes() []Route {
	return []Route{
		{"POST /sandboxes", a.auth(a.createV1)},
		{"POST /v2/sandboxes", a.auth(a.createV2)},
		{"POST /sandboxes/{id}/connect", a.auth(a.connect)},
		{"POST /v2/sandboxes/{id}/connect", a.auth(a.connect)},
		{"POST /sandboxes/{id}/resume", a.auth(a.resume)},
		{"GET /sandboxes/{id}", a.auth(a.get)},
		{"DELETE /sandboxes/{id}", a.auth(a.kill)},
		{"POST /sandboxes/{id}/timeout", a.auth(a.setTimeout)},
		{"POST /sandboxes/{id}/pause", a.auth(a.pause)},
		{"GET /sandboxes/{id}/metrics", a.auth(a.metrics)},
		{"GET /v2/sandboxes", a.auth(a.listV2)},
		{"GET /sandboxes", a.auth(a.listV1)},
		{"POST /sandboxes/{id}/fork", a.auth(a.fork)},
		{"POST /sandboxes/{id}/snapshots", a.auth(a.createSnapshot)},
		{"GET /snapshots", a.auth(a.listSnapshots)},
		{"DELETE /templates/{id}", a.auth(a.deleteTemplate)},
	}
}
