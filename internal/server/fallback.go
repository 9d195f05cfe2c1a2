package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"nestbox.dev"
	"nestbox.dev/internal/e2bcompat"
)

// probedMethods are the methods the router fallback tries when it looks
// for the methods a path allows. GET routes allow HEAD too (ServeMux).
var probedMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// fallback answers a request that no route of mux serves: 405 with an
// Allow header when its path has routes for other methods, else 404. Under
// E2B's paths the body is E2B's {code, message}, elsewhere the API's error
// shape (code "method_not_allowed" or "not_found"). The allowed methods are
// read from mux itself, so a new route is covered without a list here.
type fallback struct {
	mux *http.ServeMux
	// e2bPrefixes are the paths (and everything under them) that belong
	// to E2B's dialect.
	e2bPrefixes []string
	// literal are the paths that a route names without a wildcard (GET
	// /v1/capsules/usage). Such a path belongs to its own routes: a route
	// of another method with a wildcard there (DELETE /v1/capsules/{id})
	// does not take it, so that DELETE /v1/capsules/usage is 405, not a
	// destroy of a capsule called "usage".
	literal map[string]bool
}

// serves reports whether one of mux's routes takes r.
func (f *fallback) serves(r *http.Request) bool {
	_, pattern := f.mux.Handler(r)
	if pattern == "" {
		return false
	}
	return !f.literal[r.URL.Path] || !strings.Contains(pattern, "{")
}

// literalPaths are the paths of patterns ("METHOD /path") that have no
// wildcard.
func literalPaths(patterns []string) map[string]bool {
	out := map[string]bool{}
	for _, p := range patterns {
		_, path, _ := strings.Cut(p, " ")
		if !strings.Contains(path, "{") {
			out[path] = true
		}
	}
	return out
}

// allowed lists the methods for which a route of mux takes r's path.
func (f *fallback) allowed(r *http.Request) []string {
	var allow []string
	for _, m := range probedMethods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if f.serves(probe) {
			allow = append(allow, m)
		}
	}
	return allow
}

func (f *fallback) isE2B(path string) bool {
	return slices.ContainsFunc(f.e2bPrefixes, func(p string) bool {
		return path == p || strings.HasPrefix(path, p+"/")
	})
}

func (f *fallback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	allow := f.allowed(r)
	status, code := http.StatusNotFound, "not_found"
	msg := fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)
	if len(allow) > 0 {
		status, code = http.StatusMethodNotAllowed, "method_not_allowed"
		msg = fmt.Sprintf("%s %s: method not allowed; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", "))
		w.Header().Set("Allow", strings.Join(allow, ", "))
	}
	if f.isE2B(r.URL.Path) {
		e2bcompat.WriteStatus(w, status, msg)
		return
	}
	writeJSON(w, status, nestbox.ErrorBody{Error: nestbox.ErrorDetail{Code: code, Message: msg}})
}
