package server_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"nestbox.dev"
	"nestbox.dev/internal/server"
)

var wildcard = regexp.MustCompile(`\{[^}]*\}`)

// TestWrongMethod: for every path of every route (the table behind
// Handler, so a new route is covered without editing this test), each
// method that no route of that path has answers 405 with an Allow header
// listing the methods it has, in E2B's error shape for E2B's routes and
// in the API's (code method_not_allowed) for the others.
func TestWrongMethod(t *testing.T) {
	e := newEnv(t)
	e2b := map[string]bool{}
	for _, p := range server.E2BRoutePatterns(e.srv) {
		e2b[p] = true
	}
	type pathInfo struct {
		methods []string
		e2b     bool
	}
	paths := map[string]*pathInfo{}
	for _, p := range server.RoutePatterns(e.srv) {
		method, pattern, _ := strings.Cut(p, " ")
		if method == "*" {
			continue // the port proxy takes every method
		}
		path := wildcard.ReplaceAllString(pattern, "x1")
		pi := paths[path]
		if pi == nil {
			pi = &pathInfo{e2b: e2b[p]}
			paths[path] = pi
		}
		pi.methods = append(pi.methods, method)
		if method == http.MethodGet {
			pi.methods = append(pi.methods, http.MethodHead) // ServeMux: GET serves HEAD
		}
	}
	if len(paths) < 20 {
		t.Fatalf("only %d paths in the route table", len(paths))
	}
	for path, pi := range paths {
		for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
			if slices.Contains(pi.methods, m) {
				continue
			}
			req, _ := http.NewRequest(m, e.url+path, nil)
			req.Header.Set("X-API-Key", e.keyA)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405", m, path, resp.StatusCode)
				continue
			}
			allow := strings.Split(resp.Header.Get("Allow"), ", ")
			slices.Sort(allow)
			want := slices.Sorted(slices.Values(pi.methods))
			if !slices.Equal(allow, want) {
				t.Errorf("%s %s: Allow %q, want %q", m, path, allow, want)
			}
			if m == "HEAD" {
				continue // no body
			}
			checkShape(t, m+" "+path, body, pi.e2b, 405, "method_not_allowed")
		}
	}
}

// TestUnknownPath: a path no route has is 404, in E2B's shape under E2B's
// prefixes (served or not) and in the API's elsewhere.
func TestUnknownPath(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		method, path string
		e2b          bool
	}{
		{"GET", "/sandboxes/x1/nothing", true},
		{"POST", "/v2/sandboxes/x1/a/b", true},
		{"GET", "/volumes", true},
		{"GET", "/templates/x1/builds/b1", true},
		{"DELETE", "/templates/x1", true},
		{"GET", "/v1/nothing", false},
		{"GET", "/v1/capsules/x1/nothing", false},
		{"GET", "/nothing", false},
	} {
		req, _ := http.NewRequest(tc.method, e.url+tc.path, nil)
		req.Header.Set("X-API-Key", e.keyA)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Allow") != "" {
			t.Errorf("%s %s: %d (Allow %q), want 404", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"))
			continue
		}
		checkShape(t, tc.method+" "+tc.path, body, tc.e2b, 404, "not_found")
	}
}

// checkShape checks an error body: E2B's {code: status, message} or the
// API's {"error": {code, message}}.
func checkShape(t *testing.T, what string, body map[string]any, e2b bool, status int, code string) {
	t.Helper()
	if e2b {
		if c, ok := body["code"].(float64); !ok || int(c) != status || body["message"] == "" || body["message"] == nil || body["error"] != nil {
			t.Errorf("%s: body %v, want E2B's {code: %d, message}", what, body, status)
		}
		return
	}
	raw, _ := json.Marshal(body)
	var eb nestbox.ErrorBody
	if err := json.Unmarshal(raw, &eb); err != nil || eb.Error.Code != code || eb.Error.Message == "" {
		t.Errorf("%s: body %s, want the API's error with code %q", what, raw, code)
	}
}
