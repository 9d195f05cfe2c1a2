package server

import (
	"context"
	"net/http"
	"regexp"
	"strings"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
)

// The HTTP side of extensions (the public package nestbox.dev/platform):
// the routes a program embedding the control plane adds, who their caller
// is, and the audit entries they write.

// ExtensionRoute is a route an extension adds to the API. Its handler runs
// only for an authenticated caller (an API key or a session, as every team
// route), or, with Admin, a platform admin; CallerOf tells it who.
type ExtensionRoute struct {
	// Pattern is a net/http pattern with a method: "GET /v1/ext/hello".
	Pattern string
	Handler http.HandlerFunc
	// Admin lets only platform admins in; anyone else authenticated gets
	// 403.
	Admin bool
}

// Caller is who an authenticated request acts for.
type Caller struct {
	// TeamID is the team the request acts in.
	TeamID string
	// UserID is the session's user, or the user who made the API key;
	// "" for a key nobody is known to have made (the first start's).
	UserID string
	// KeyID is the API key that authenticated the request, "" for a
	// session.
	KeyID string
	// SessionID is the session that authenticated the request, "" for an
	// API key.
	SessionID string
}

// CallerOf returns who the request whose context is ctx acts for, and
// false outside an authenticated route.
func CallerOf(ctx context.Context) (Caller, bool) {
	p, ok := ctx.Value(principalKey{}).(principal)
	if !ok || p.TeamID == "" {
		return Caller{}, false
	}
	c := Caller{TeamID: p.TeamID, KeyID: p.Key.ID, UserID: p.Key.CreatedBy}
	if p.Session != nil {
		c.SessionID, c.UserID, c.KeyID = p.Session.ID, p.UserID, ""
	}
	return c, true
}

// Record writes the audit entry of what r did, completed as the core's
// entries are (record): the actor from r's caller, the team (r's for scope
// team unless e names one, the platform team for scope admin) and, when
// err is not nil, the status failure with err's code. Extensions call it
// from their handlers.
func (s *Server) Record(r *http.Request, e nestbox.AuditEntry, err error) {
	s.record(r, e, err)
}

// extensionMux is the mux of the extensions' routes. Handler consults it
// only for a request none of the core's routes takes, so an extension
// cannot shadow a core route. A pattern that a core route would take is
// refused here (it would never be reached), as is one that is malformed or
// conflicts with another extension's (ServeMux's panic, as an error).
func (s *Server) extensionMux() (*http.ServeMux, error) {
	if len(s.cfg.Extensions) == 0 {
		return nil, nil
	}
	core := http.NewServeMux()
	for _, r := range s.routes() {
		core.HandleFunc(r.pattern, http.NotFound)
	}
	for _, r := range s.e2b.Routes() {
		core.HandleFunc(r.Pattern, http.NotFound)
	}
	mux := http.NewServeMux()
	for _, rt := range s.cfg.Extensions {
		method, path, ok := strings.Cut(rt.Pattern, " ")
		if !ok || method == "" || !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "/proxy/") {
			return nil, errdefs.Invalid("extension route %q: want a method and a path outside /proxy/, e.g. \"GET /v1/ext/hello\"", rt.Pattern)
		}
		if rt.Handler == nil {
			return nil, errdefs.Invalid("extension route %q: no handler", rt.Pattern)
		}
		probe, err := http.NewRequest(method, "http://nestbox"+wildcards.ReplaceAllString(path, "x"), nil)
		if err != nil {
			return nil, errdefs.Invalid("extension route %q: %v", rt.Pattern, err)
		}
		if _, p := core.Handler(probe); p != "" {
			return nil, errdefs.Conflict("extension route %q: the core route %q takes its requests", rt.Pattern, p)
		}
		h := s.authenticated(rt.Handler)
		if rt.Admin {
			h = s.platformAdmin(rt.Handler)
		}
		if err := handle(mux, rt.Pattern, h); err != nil {
			return nil, err
		}
	}
	return mux, nil
}

// wildcards matches a pattern's wildcards ({id}, {path...}, {$}).
var wildcards = regexp.MustCompile(`\{[^}]*\}`)

// handle registers h at pattern, turning ServeMux's panic on a malformed
// or conflicting pattern into an error.
func handle(mux *http.ServeMux, pattern string, h http.HandlerFunc) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errdefs.Invalid("extension route %q: %v", pattern, p)
		}
	}()
	mux.HandleFunc(pattern, h)
	return nil
}

// WriteError answers r with err in the API's error shape and the status of
// its kind (errdefs), as the core's handlers do.
func (s *Server) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	s.writeError(w, r, err)
}
