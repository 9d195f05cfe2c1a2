package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"

	"nestbox.dev"
	"nestbox.dev/internal/controlplane"
	"nestbox.dev/internal/server"
)

// Extension adds to a control plane. New calls Setup once, in the order
// of Config.Extensions, before anything serves or runs; Setup takes the
// services it needs from x and registers its routes, middleware and
// workers there. An error from Setup fails New.
type Extension struct {
	// Name names the extension in logs, metrics and errors: lower-case
	// letters, digits and dashes, e.g. "billing".
	Name  string
	Setup func(x *Extender) error
}

// Extender is what an extension's Setup is given: the control plane's
// services, and the places to register what it adds. Its registering
// methods may be called during Setup only; its services stay valid for
// the life of the Platform and are safe for concurrent use.
type Extender struct {
	name string
	p    *Platform
	svc  services

	routes     []server.ExtensionRoute
	middleware []func(http.Handler) http.Handler
	workers    []controlplane.Worker
	// done is set when Setup has returned: registering is over.
	done bool
}

// services are what an Extender hands out.
type services struct {
	store  Store
	audit  *AuditLog
	mailer Mailer
	life   *Lifecycle
	log    *slog.Logger
}

var extensionName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

func (p *Platform) setUp(ext Extension, svc services) (*Extender, error) {
	if !extensionName.MatchString(ext.Name) {
		return nil, fmt.Errorf("platform: extension name %q: want lower-case letters, digits and dashes", ext.Name)
	}
	if ext.Setup == nil {
		return nil, fmt.Errorf("platform: extension %s: no Setup", ext.Name)
	}
	svc.log = svc.log.With("extension", ext.Name)
	x := &Extender{name: ext.Name, p: p, svc: svc}
	err := ext.Setup(x)
	x.done = true
	if err != nil {
		return nil, fmt.Errorf("platform: set up extension %s: %w", ext.Name, err)
	}
	return x, nil
}

// Store is the control plane's database.
func (x *Extender) Store() Store { return x.svc.store }

// Audit is the audit log. A handler records what its request did with
// Record; a worker, which acts for nobody, writes entries with
// Audit().Record and the actor nestbox.AuditActor{Type:
// nestbox.AuditActorSystem}.
func (x *Extender) Audit() *AuditLog { return x.svc.audit }

// Mailer sends mail with the control plane's mailer (SMTP, or the log in
// development).
func (x *Extender) Mailer() Mailer { return x.svc.mailer }

// Lifecycle creates, pauses, resumes and destroys capsules, within the
// team's quotas and the operator's limits, as the API does.
func (x *Extender) Lifecycle() *Lifecycle { return x.svc.life }

// Logger is the control plane's logger, with the extension's name.
func (x *Extender) Logger() *slog.Logger { return x.svc.log }

// Handle registers a route: pattern is net/http's, with a method ("GET
// /v1/ext/hello"; paths under /v1/ext/ are never the core's). It is
// served after the core's routes, behind the same authentication: h runs
// only for a valid API key or session, and CallerOf tells it whose. A
// pattern a core route takes, or that conflicts with another extension's,
// fails New.
func (x *Extender) Handle(pattern string, h http.HandlerFunc) {
	x.route(server.ExtensionRoute{Pattern: pattern, Handler: h})
}

// HandleAdmin is Handle for platform admins only: anyone else
// authenticated gets 403.
func (x *Extender) HandleAdmin(pattern string, h http.HandlerFunc) {
	x.route(server.ExtensionRoute{Pattern: pattern, Handler: h, Admin: true})
}

func (x *Extender) route(r server.ExtensionRoute) {
	x.mustSetUp()
	x.routes = append(x.routes, r)
}

// Use adds middleware around every request of the API, core routes
// included. It runs before routing and authentication (CallerOf knows
// nobody yet); the first registered is the outermost.
func (x *Extender) Use(mw func(http.Handler) http.Handler) {
	x.mustSetUp()
	x.middleware = append(x.middleware, mw)
}

// Go registers a background worker. Run starts run in its own goroutine
// and, at shutdown, cancels its context and waits for it to return. A
// worker that returns an error or panics before shutdown is logged at
// error level and counted in nestbox_extension_worker_failures_total;
// the control plane goes on serving and does not restart it (a worker
// that should survive its errors retries inside run).
func (x *Extender) Go(name string, run func(ctx context.Context) error) {
	x.mustSetUp()
	x.workers = append(x.workers, controlplane.Worker{Name: x.name + "/" + name, Run: run})
}

func (x *Extender) mustSetUp() {
	if x.done {
		// A programming error of the extension's, like a bad ServeMux
		// pattern: New is over and nothing would serve or run it.
		panic(errors.New("platform: extension " + x.name + " registered after its Setup returned"))
	}
}

// Record writes the audit entry of what the authenticated request r did,
// completed as the core completes its own: the actor is r's caller, the
// team r's (scope team, unless e names one) or the platform team (scope
// admin), and a non-nil err makes it a failure with err's code. e needs
// its Scope and Action ("invoice.create"); ResourceID and Metadata are
// optional. An entry that cannot be written is logged, as the core's are.
func (x *Extender) Record(r *http.Request, e AuditEntry, err error) {
	x.p.cp.Server.Record(r, e, err)
}

// WriteError answers r with err in the API's error shape
// ({"error": {"code", "message"}}) and the status of its kind: the
// store's and the lifecycle's errors keep theirs (not found is 404, ...),
// any other error is 500.
func (x *Extender) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	x.p.cp.Server.WriteError(w, r, err)
}

// Caller is who an authenticated request acts for: its team, and the
// user and the API key or session.
type Caller = server.Caller

// CallerOf returns who r acts for, and false outside an extension's
// route (or a core one).
func CallerOf(r *http.Request) (Caller, bool) { return server.CallerOf(r.Context()) }

// TeamEntry is an audit entry of scope team, for Record.
func TeamEntry(action, resourceID string, meta map[string]string) AuditEntry {
	return AuditEntry{Scope: nestbox.AuditScopeTeam, Action: action, ResourceID: resourceID, Metadata: meta}
}
