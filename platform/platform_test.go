package platform_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/metrics/metricstest"
	"nestbox.dev/platform"
)

// start runs a platform with exts on SQLite in a temporary directory, as
// a fleet (no agent needed), and returns its URL and first API key. The
// platform stops at the end of the test; stop stops it earlier and
// returns Run's error.
func start(t *testing.T, exts ...platform.Extension) (p *platform.Platform, key string, stop func() error) {
	t.Helper()
	p, err := platform.New(t.Context(), platform.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Extensions: exts})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	var once bool
	var runErr error
	stop = func() error {
		if !once {
			once = true
			cancel()
			runErr = <-errc
			p.Close()
		}
		return runErr
	}
	t.Cleanup(func() { stop() })
	return p, p.NewKey(), stop
}

func get(t *testing.T, url, key string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestWorkerFailures: a worker that panics and one that returns an error
// are logged and counted, and the control plane goes on serving the
// extension's routes and the core's; shutdown still returns cleanly.
func TestWorkerFailures(t *testing.T) {
	var released = make(chan struct{})
	ext := platform.Extension{Name: "flaky", Setup: func(x *platform.Extender) error {
		x.Go("panics", func(ctx context.Context) error { panic("boom") })
		x.Go("fails", func(ctx context.Context) error { return errors.New("broken") })
		x.Go("waits", func(ctx context.Context) error {
			<-ctx.Done()
			close(released)
			return ctx.Err()
		})
		x.Handle("GET /v1/ext/ping", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pong") })
		return nil
	}}
	p, key, stop := start(t, ext)
	deadline := time.Now().Add(time.Minute)
	for {
		fams := metricstest.Families(t, p.Metrics())
		panics := metricstest.Value(t, fams, "nestbox_extension_worker_failures_total", "worker", "flaky/panics")
		fails := metricstest.Value(t, fams, "nestbox_extension_worker_failures_total", "worker", "flaky/fails")
		if panics == 1 && fails == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("failures counted: panics %v, fails %v; want 1 each", panics, fails)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, _, body := get(t, p.URL()+"/v1/ext/ping", key); code != 200 || body != "pong" {
		t.Errorf("the extension's route after its workers failed: %d %s", code, body)
	}
	if code, _, body := get(t, p.URL()+"/v1/capsules", key); code != 200 {
		t.Errorf("a core route after the extension's workers failed: %d %s", code, body)
	}
	if err := stop(); err != nil {
		t.Errorf("Run after the workers failed: %v", err)
	}
	select {
	case <-released:
	default:
		t.Error("Run returned before the waiting worker saw its context end")
	}
}

// TestMiddlewareAndAdminRoutes: middleware wraps core routes too, an
// admin route takes the bootstrap admin's key, and CallerOf names the
// caller.
func TestMiddlewareAndAdminRoutes(t *testing.T) {
	ext := platform.Extension{Name: "mw", Setup: func(x *platform.Extender) error {
		x.Use(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Extension", "mw")
				next.ServeHTTP(w, r)
			})
		})
		x.HandleAdmin("GET /v1/ext/admin/whoami", func(w http.ResponseWriter, r *http.Request) {
			c, ok := platform.CallerOf(r)
			if !ok {
				x.WriteError(w, r, errors.New("no caller"))
				return
			}
			io.WriteString(w, c.TeamID+" "+c.UserID)
		})
		return nil
	}}
	p, key, _ := start(t, ext)
	if code, h, _ := get(t, p.URL()+"/health", ""); code != 200 || h.Get("X-Extension") != "mw" {
		t.Errorf("GET /health: %d, X-Extension %q; want the middleware's header on a core route", code, h.Get("X-Extension"))
	}
	if code, _, body := get(t, p.URL()+"/v1/ext/admin/whoami", key); code != 200 || body != "team_default usr_admin" {
		t.Errorf("admin route with the bootstrap admin's key: %d %q", code, body)
	}
	if code, _, _ := get(t, p.URL()+"/v1/ext/admin/whoami", ""); code != 401 {
		t.Errorf("admin route without a key: %d, want 401", code)
	}
	// Keys of users who are not admins get 403: the authorization
	// matrix (internal/server) has that row for extensions' admin routes.
}

// TestExtensionsRefused: what an extension may not register fails New.
func TestExtensionsRefused(t *testing.T) {
	dir := t.TempDir()
	route := func(pattern string) func(x *platform.Extender) error {
		return func(x *platform.Extender) error {
			x.Handle(pattern, func(http.ResponseWriter, *http.Request) {})
			return nil
		}
	}
	for _, tc := range []struct {
		name string
		exts []platform.Extension
		want string
	}{
		{"a core route's requests", []platform.Extension{{Name: "a", Setup: route("GET /v1/capsules/special")}}, "core route"},
		{"a core route exactly", []platform.Extension{{Name: "a", Setup: route("GET /health")}}, "core route"},
		{"no method", []platform.Extension{{Name: "a", Setup: route("/v1/ext/x")}}, "method"},
		{"the port proxy", []platform.Extension{{Name: "a", Setup: route("GET /proxy/x")}}, "proxy"},
		{"another extension's", []platform.Extension{{Name: "a", Setup: route("GET /v1/ext/x")}, {Name: "b", Setup: route("GET /v1/ext/x")}}, "conflicts"},
		{"a name twice", []platform.Extension{{Name: "a", Setup: route("GET /v1/ext/x")}, {Name: "a", Setup: route("GET /v1/ext/y")}}, "two extensions"},
		{"a bad name", []platform.Extension{{Name: "Bad Name", Setup: route("GET /v1/ext/x")}}, "name"},
		{"no setup", []platform.Extension{{Name: "a"}}, "Setup"},
		{"a failing setup", []platform.Extension{{Name: "a", Setup: func(*platform.Extender) error { return errors.New("no licence") }}}, "no licence"},
	} {
		// One data directory for all: its database is migrated once.
		p, err := platform.New(t.Context(), platform.Config{DataDir: dir, Listen: "127.0.0.1:0", Extensions: tc.exts})
		if err == nil {
			p.Close()
			t.Errorf("%s: New succeeded", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", tc.name, err, tc.want)
		}
	}
}

// TestExtensionServices: the services an Extender hands out are the
// control plane's: the lifecycle lists the caller's capsules, the store
// reads its team, the mailer sends, and a worker's entry written through
// Audit() reads back through the audit-log API.
func TestExtensionServices(t *testing.T) {
	recorded := make(chan error, 1)
	ext := platform.Extension{Name: "svc", Setup: func(x *platform.Extender) error {
		if x.Store() == nil || x.Audit() == nil || x.Mailer() == nil || x.Lifecycle() == nil || x.Logger() == nil {
			return errors.New("a service is nil")
		}
		x.Handle("GET /v1/ext/capsules", func(w http.ResponseWriter, r *http.Request) {
			c, _ := platform.CallerOf(r)
			l, err := x.Lifecycle().List(r.Context(), c.TeamID, platform.CapsuleFilter{})
			if err == nil {
				_, err = x.Store().GetTeam(r.Context(), c.TeamID)
			}
			if err == nil {
				err = x.Mailer().Send(r.Context(), platform.MailMessage{To: "ops@example.com", Subject: "hello", Text: "hello"})
			}
			if err != nil {
				x.WriteError(w, r, err)
				return
			}
			io.WriteString(w, strconv.Itoa(len(l.Capsules)))
		})
		x.Go("audit", func(ctx context.Context) error {
			recorded <- x.Audit().Record(ctx, platform.AuditEntry{Scope: nestbox.AuditScopeAdmin, TeamID: "team_default",
				Actor: nestbox.AuditActor{Type: nestbox.AuditActorSystem, Name: "svc"}, Action: "report.send", ResourceID: "daily"})
			<-ctx.Done()
			return nil
		})
		return nil
	}}
	p, key, _ := start(t, ext)
	if err := <-recorded; err != nil {
		t.Fatalf("the worker's audit entry: %v", err)
	}
	if code, _, body := get(t, p.URL()+"/v1/ext/capsules", key); code != 200 || body != "0" {
		t.Errorf("GET /v1/ext/capsules: %d %q, want 200 and no capsules", code, body)
	}
	c, err := nestbox.New(nestbox.Config{URL: p.URL(), APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.AdminAuditLogs(t.Context(), nestbox.AuditListOptions{ResourceType: "report"})
	if err != nil || len(l.Entries) != 1 || l.Entries[0].Actor.Type != nestbox.AuditActorSystem || l.Entries[0].ResourceID != "daily" {
		t.Errorf("the worker's entry through GET /v1/admin/audit-logs: %+v, %v", l.Entries, err)
	}
}

// TestListenerFailureStops: a listener that fails under Run ends the
// server, and with it the workers, so that Run returns (with the error)
// instead of waiting for a context nobody will cancel.
func TestListenerFailureStops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	ext := platform.Extension{Name: "w", Setup: func(x *platform.Extender) error {
		x.Go("waits", func(ctx context.Context) error {
			<-ctx.Done()
			close(stopped)
			return nil
		})
		return nil
	}}
	p, err := platform.New(t.Context(), platform.Config{DataDir: t.TempDir(), Listener: ln, Extensions: []platform.Extension{ext}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	errc := make(chan error, 1)
	go func() { errc <- p.Run(context.Background()) }()
	if code, _, _ := get(t, p.URL()+"/health", ""); code != 200 {
		t.Fatalf("GET /health: %d", code)
	}
	ln.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("Run after its listener failed: nil, want the error")
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of its listener's failure")
	}
	select {
	case <-stopped:
	default:
		t.Error("Run returned before its worker was stopped")
	}
}
