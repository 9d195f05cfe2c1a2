package server_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/apikey"
	"nestbox.dev/internal/server"
	"nestbox.dev/internal/store"
)

// authzRow is one route of the authorization matrix: a request to it, and
// the status it must get with another team's key and with a valid key of
// the owning team. Every other column (no key, a malformed key, an unknown
// key, a revoked key) must get unauthenticated, anyOther when public.
type authzRow struct {
	method, path, body string
	other, valid       int
	// public routes answer every column alike, with valid.
	public bool
	// hostOnly routes take no API key at all: every column is 401.
	hostOnly bool
}

// TestAuthorizationMatrix sends every route of the server's route tables
// (its own and E2B's dialect) with no key, a malformed key, an unknown
// key, a revoked key, another team's key and a valid key, and checks the
// status of each. A route added to a table without a row here fails the
// test, as does a row for a route that is no longer served.
func TestAuthorizationMatrix(t *testing.T) {
	agent := newAgentProxy(t)
	e := newEnv(t, withAgentProxy(agent.url))
	ctx := t.Context()
	c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})        // read and used
	doomed := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})   // destroyed by DELETE /v1/capsules/{id}
	killed := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})   // destroyed by DELETE /sandboxes/{id}
	toPause := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})  // paused by POST /v1/capsules/{id}/pause
	toResume := e.paused(t, e.keyA, nestbox.CreateCapsuleRequest{})  // resumed by POST /v1/capsules/{id}/resume
	e2bPause := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{}) // paused by POST /sandboxes/{id}/pause
	e2bResume := e.paused(t, e.keyA, nestbox.CreateCapsuleRequest{}) // resumed by POST /sandboxes/{id}/resume

	revoked, hash := apikey.New()
	now := time.Now().UTC()
	for _, k := range []store.APIKey{
		{ID: "key_revoked", TeamID: "team_a", Name: "revoked", Prefix: apikey.DisplayPrefix(revoked), Hash: hash, CreatedAt: now},
	} {
		if err := e.store.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.DeleteAPIKey(ctx, "team_a", "key_revoked"); err != nil {
		t.Fatal(err)
	}
	spare, spareHash := apikey.New()
	if err := e.store.CreateAPIKey(ctx, store.APIKey{ID: "key_spare", TeamID: "team_a", Name: "spare", Prefix: apikey.DisplayPrefix(spare), Hash: spareHash, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	unknown, _ := apikey.New()

	id := c.ID
	rows := map[string]authzRow{
		"GET /health":       {method: "GET", path: "/health", valid: 200, public: true},
		"GET /openapi.yaml": {method: "GET", path: "/openapi.yaml", valid: 200, public: true},
		// Team-wide routes act on the caller's own team: another team's
		// key succeeds, for that team.
		"POST /v1/capsules":                             {method: "POST", path: "/v1/capsules", body: `{}`, other: 202, valid: 202},
		"GET /v1/capsules":                              {method: "GET", path: "/v1/capsules", other: 200, valid: 200},
		"GET /v1/capsules/{id}":                         {method: "GET", path: "/v1/capsules/" + id, other: 404, valid: 200},
		"DELETE /v1/capsules/{id}":                      {method: "DELETE", path: "/v1/capsules/" + doomed.ID, other: 404, valid: 202},
		"POST /v1/capsules/{id}/pause":                  {method: "POST", path: "/v1/capsules/" + toPause.ID + "/pause", other: 404, valid: 202},
		"POST /v1/capsules/{id}/resume":                 {method: "POST", path: "/v1/capsules/" + toResume.ID + "/resume", other: 404, valid: 202},
		"POST /v1/capsules/{id}/fork":                   {method: "POST", path: "/v1/capsules/" + id + "/fork", body: `{"count":1}`, other: 404, valid: 202},
		"POST /v1/capsules/{id}/timeout":                {method: "POST", path: "/v1/capsules/" + id + "/timeout", body: `{"timeout_seconds":600}`, other: 404, valid: 200},
		"GET /v1/capsules/{id}/metrics":                 {method: "GET", path: "/v1/capsules/" + id + "/metrics", other: 404, valid: 200},
		"GET /v1/capsules/{id}/events":                  {method: "GET", path: "/v1/capsules/" + id + "/events", other: 404, valid: 200},
		"POST /v1/capsules/{id}/exec":                   {method: "POST", path: "/v1/capsules/" + id + "/exec", body: `{"cmd":["true"]}`, other: 404, valid: 200},
		"GET /v1/capsules/{id}/exec/stream":             {method: "GET", path: "/v1/capsules/" + id + "/exec/stream", other: 404, valid: http.StatusUpgradeRequired},
		"GET /v1/capsules/{id}/processes":               {method: "GET", path: "/v1/capsules/" + id + "/processes", other: 404, valid: 200},
		"POST /v1/capsules/{id}/processes/{pid}/signal": {method: "POST", path: "/v1/capsules/" + id + "/processes/7/signal", body: `{"signal":"SIGTERM"}`, other: 404, valid: 204},
		"GET /v1/capsules/{id}/pty":                     {method: "GET", path: "/v1/capsules/" + id + "/pty", other: 404, valid: http.StatusUpgradeRequired},
		"GET /v1/capsules/{id}/files":                   {method: "GET", path: "/v1/capsules/" + id + "/files?path=/f", other: 404, valid: 200},
		"PUT /v1/capsules/{id}/files":                   {method: "PUT", path: "/v1/capsules/" + id + "/files?path=/f", body: "x", other: 404, valid: 200},
		"DELETE /v1/capsules/{id}/files":                {method: "DELETE", path: "/v1/capsules/" + id + "/files?path=/f", other: 404, valid: 204},
		"GET /v1/capsules/{id}/files/list":              {method: "GET", path: "/v1/capsules/" + id + "/files/list?path=/", other: 404, valid: 200},
		"GET /v1/capsules/{id}/files/stat":              {method: "GET", path: "/v1/capsules/" + id + "/files/stat?path=/f", other: 404, valid: 200},
		"POST /v1/capsules/{id}/files/mkdir":            {method: "POST", path: "/v1/capsules/" + id + "/files/mkdir", body: `{"path":"/d"}`, other: 404, valid: 200},
		"POST /v1/keys":                                 {method: "POST", path: "/v1/keys", body: `{"name":"k"}`, other: 201, valid: 201},
		"GET /v1/keys":                                  {method: "GET", path: "/v1/keys", other: 200, valid: 200},
		"DELETE /v1/keys/{id}":                          {method: "DELETE", path: "/v1/keys/key_spare", other: 404, valid: 204},
		"GET /v1/templates":                             {method: "GET", path: "/v1/templates", other: 200, valid: 200},
		"POST /v1/hosts/sandbox-events":                 {method: "POST", path: "/v1/hosts/sandbox-events", body: `{}`, hostOnly: true},
		"* /proxy/{id}/{port}/{path...}":                {method: "GET", path: "/proxy/" + id + "/8080/x", other: 404, valid: 200},

		// E2B's dialect.
		"POST /sandboxes":                 {method: "POST", path: "/sandboxes", body: `{"templateID":"base"}`, other: 201, valid: 201},
		"POST /v2/sandboxes":              {method: "POST", path: "/v2/sandboxes", body: `{"templateID":"base"}`, other: 201, valid: 201},
		"POST /sandboxes/{id}/connect":    {method: "POST", path: "/sandboxes/" + id + "/connect", body: `{"timeout":600}`, other: 404, valid: 200},
		"POST /v2/sandboxes/{id}/connect": {method: "POST", path: "/v2/sandboxes/" + id + "/connect", other: 404, valid: 200},
		"POST /sandboxes/{id}/resume":     {method: "POST", path: "/sandboxes/" + e2bResume.ID + "/resume", other: 404, valid: 201},
		"GET /sandboxes/{id}":             {method: "GET", path: "/sandboxes/" + id, other: 404, valid: 200},
		"DELETE /sandboxes/{id}":          {method: "DELETE", path: "/sandboxes/" + killed.ID, other: 404, valid: 204},
		"POST /sandboxes/{id}/timeout":    {method: "POST", path: "/sandboxes/" + id + "/timeout", body: `{"timeout":600}`, other: 404, valid: 204},
		"POST /sandboxes/{id}/pause":      {method: "POST", path: "/sandboxes/" + e2bPause.ID + "/pause", other: 404, valid: 204},
		"GET /sandboxes/{id}/metrics":     {method: "GET", path: "/sandboxes/" + id + "/metrics", other: 404, valid: 200},
		"GET /v2/sandboxes":               {method: "GET", path: "/v2/sandboxes", other: 200, valid: 200},
		"GET /sandboxes":                  {method: "GET", path: "/sandboxes", other: 200, valid: 200},
	}

	patterns := server.RoutePatterns(e.srv)
	for _, p := range patterns {
		if _, ok := rows[p]; !ok {
			t.Errorf("route %q has no row in the authorization matrix: add one", p)
		}
	}
	for p := range rows {
		if !slices.Contains(patterns, p) {
			t.Errorf("the authorization matrix has a row for %q, which is not served", p)
		}
	}

	columns := []struct {
		name, key string
		header    string // "X-API-Key" or "Authorization" (Bearer)
	}{
		{"no key", "", "X-API-Key"},
		{"malformed key", "nbx_not-a-key", "X-API-Key"},
		{"malformed bearer", "Bearer", "Authorization"},
		{"unknown key", unknown, "X-API-Key"},
		{"unknown key (E2B form)", apikey.E2BForm(unknown), "X-API-Key"},
		{"revoked key", revoked, "X-API-Key"},
		{"revoked key as bearer", revoked, "Authorization"},
		{"the host token as a key", hostToken, "X-API-Key"},
		{"other team's key", e.keyB, "X-API-Key"},
		{"valid key", e.keyA, "X-API-Key"},
	}
	// Run the rows in a fixed order; the valid key goes last for each, so
	// that the destructive ones (DELETE) have run every other column first.
	names := make([]string, 0, len(rows))
	for p := range rows {
		names = append(names, p)
	}
	slices.Sort(names)
	for _, p := range names {
		row := rows[p]
		for _, col := range columns {
			want := http.StatusUnauthorized
			switch {
			case row.hostOnly:
			case row.public:
				want = row.valid
			case col.name == "other team's key":
				want = row.other
			case col.name == "valid key":
				want = row.valid
			}
			req, err := http.NewRequest(row.method, e.url+row.path, strings.NewReader(row.body))
			if err != nil {
				t.Fatal(err)
			}
			if row.body != "" && strings.HasPrefix(row.body, "{") {
				req.Header.Set("Content-Type", "application/json")
			}
			switch {
			case col.key == "":
			case col.header == "Authorization" && col.key == "Bearer":
				req.Header.Set("Authorization", "Bearer ")
			case col.header == "Authorization":
				req.Header.Set("Authorization", "Bearer "+col.key)
			default:
				req.Header.Set(col.header, col.key)
			}
			code, body := send(t, req)
			if code != want {
				if len(body) > 200 {
					body = body[:200]
				}
				t.Errorf("%s with %s: %d %s, want %d", p, col.name, code, body, want)
			}
		}
	}

	// GET /metrics is not a route of the API: the control plane's
	// metrics (fleet-wide counts, every team's traffic) are served only
	// on the operator's metrics listener (docs/security.md). No key, nor
	// the host token, reads them here.
	for _, col := range append(columns, struct{ name, key, header string }{"the host token as a bearer", hostToken, "Authorization"}) {
		req, err := http.NewRequest("GET", e.url+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case col.key == "":
		case col.header == "Authorization":
			req.Header.Set("Authorization", "Bearer "+col.key)
		default:
			req.Header.Set(col.header, col.key)
		}
		if code, body := send(t, req); code != http.StatusNotFound || strings.Contains(string(body), "nestbox_") {
			t.Errorf("GET /metrics on the API with %s: %d %.200s, want 404 and no metrics", col.name, code, body)
		}
	}
}
