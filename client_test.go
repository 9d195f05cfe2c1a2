package nestbox_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"nestbox.dev"
)

func TestNewReadsEnvironment(t *testing.T) {
	var gotKey, gotUA string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotKey, gotUA = r.Header.Get("X-API-Key"), r.Header.Get("User-Agent")
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	defer srv.Close()

	t.Setenv(nestbox.EnvURL, srv.URL+"/")
	t.Setenv(nestbox.EnvAPIKey, testKey+"\n")
	c, err := nestbox.New(nestbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c.URL() != srv.URL {
		t.Errorf("URL() = %q, want %q", c.URL(), srv.URL)
	}
	if err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	if gotKey != testKey || gotUA != nestbox.DefaultUserAgent {
		t.Errorf("server saw key %q, user agent %q; want %q, %q", gotKey, gotUA, testKey, nestbox.DefaultUserAgent)
	}

	// Config wins over the environment.
	c, err = nestbox.New(nestbox.Config{APIKey: "nbx_other", UserAgent: "test/1"})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Health(context.Background())
	if gotKey != "nbx_other" || gotUA != "test/1" {
		t.Errorf("server saw key %q, user agent %q; want the Config's", gotKey, gotUA)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name, envURL, envKey string
		cfg                  nestbox.Config
	}{
		{name: "nothing"},
		{name: "no key", envURL: "http://localhost:8080"},
		{name: "no URL", envKey: testKey},
		{name: "bad scheme", cfg: nestbox.Config{URL: "ftp://host", APIKey: testKey}},
		{name: "no host", cfg: nestbox.Config{URL: "http://", APIKey: testKey}},
		{name: "query", cfg: nestbox.Config{URL: "http://host/?a=b", APIKey: testKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(nestbox.EnvURL, tt.envURL)
			t.Setenv(nestbox.EnvAPIKey, tt.envKey)
			t.Setenv(nestbox.EnvDataDir, t.TempDir()) // no credentials file
			_, err := nestbox.New(tt.cfg)
			if !errors.Is(err, nestbox.ErrInvalid) {
				t.Errorf("New(%+v) with env %q, %q: err = %v, want ErrInvalid", tt.cfg, tt.envURL, tt.envKey, err)
			}
		})
	}
}

func TestErrorsMatchKinds(t *testing.T) {
	kinds := []error{nestbox.ErrNotFound, nestbox.ErrConflict, nestbox.ErrInvalid, nestbox.ErrUnavailable,
		nestbox.ErrUnauthenticated, nestbox.ErrPermission, nestbox.ErrExhausted}
	tests := []struct {
		status   int
		body     string
		wantKind error // nil: none of the kinds
		wantCode string
		wantMsg  string
	}{
		{404, `{"error":{"code":"not_found","message":"capsule abc not found"}}`, nestbox.ErrNotFound, "not_found", "capsule abc not found (not_found)"},
		{409, `{"error":{"code":"conflict","message":"busy"}}`, nestbox.ErrConflict, "conflict", "busy (conflict)"},
		{409, `{"error":{"code":"already_exists","message":"exists"}}`, nestbox.ErrConflict, "already_exists", "exists (already_exists)"},
		{400, `{"error":{"code":"invalid_argument","message":"bad"}}`, nestbox.ErrInvalid, "invalid_argument", "bad (invalid_argument)"},
		{413, `{"error":{"code":"too_large","message":"big"}}`, nestbox.ErrInvalid, "too_large", "big (too_large)"},
		{503, `{"error":{"code":"unavailable","message":"no host"}}`, nestbox.ErrUnavailable, "unavailable", "no host (unavailable)"},
		{401, `{"error":{"code":"unauthenticated","message":"who"}}`, nestbox.ErrUnauthenticated, "unauthenticated", "who (unauthenticated)"},
		{403, `{"error":{"code":"permission_denied","message":"no"}}`, nestbox.ErrPermission, "permission_denied", "no (permission_denied)"},
		{429, `{"error":{"code":"resource_exhausted","message":"quota"}}`, nestbox.ErrExhausted, "resource_exhausted", "quota (resource_exhausted)"},
		{507, `{"error":{"code":"no_space","message":"disk full"}}`, nestbox.ErrExhausted, "no_space", "disk full (no_space)"},
		{500, `{"error":{"code":"internal","message":"oops"}}`, nil, "internal", "oops (internal)"},
		// Bodies that are not the API's JSON still give the status's kind.
		{404, `404 page not found`, nestbox.ErrNotFound, "not_found", "404 page not found (not_found)"},
		{502, `<html>bad gateway</html>`, nestbox.ErrUnavailable, "unavailable", "bad gateway (unavailable)"},
		{418, ``, nil, "", "i'm a teapot"},
		// An unknown code falls back on the status.
		{404, `{"error":{"code":"gone_fishing","message":"x"}}`, nestbox.ErrNotFound, "gone_fishing", "x (gone_fishing)"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", tt.status, tt.wantCode), func(t *testing.T) {
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			_, err := c.Get(context.Background(), "abc")
			var apiErr *nestbox.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %T %v, want *APIError", err, err)
			}
			if apiErr.StatusCode != tt.status || apiErr.Code != tt.wantCode {
				t.Errorf("got status %d code %q, want %d %q for body %q", apiErr.StatusCode, apiErr.Code, tt.status, tt.wantCode, tt.body)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.wantMsg)
			}
			for _, k := range kinds {
				if got, want := errors.Is(err, k), k == tt.wantKind; got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v for body %q", err, k, got, want, tt.body)
				}
			}
		})
	}
}

func TestWrongKeyIsUnauthenticated(t *testing.T) {
	c := newTestClient(t, http.NotFoundHandler())
	c2, err := nestbox.New(nestbox.Config{URL: c.URL(), APIKey: "nbx_wrong"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c2.Templates(context.Background())
	if !errors.Is(err, nestbox.ErrUnauthenticated) {
		t.Errorf("err = %v, want ErrUnauthenticated", err)
	}
}

func TestPathPrefixKept(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.EscapedPath()
		writeJSON(w, http.StatusOK, nestbox.Capsule{ID: "a/b"})
	}))
	defer srv.Close()
	c, err := nestbox.New(nestbox.Config{URL: srv.URL + "/nestbox/", APIKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "a/b"); err != nil {
		t.Fatal(err)
	}
	if want := "/nestbox/v1/capsules/a%2Fb"; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
	if !strings.HasPrefix(c.Capsule("x").ProxyURL(8080), srv.URL+"/nestbox/proxy/x/8080/") {
		t.Errorf("ProxyURL = %q", c.Capsule("x").ProxyURL(8080))
	}
}
