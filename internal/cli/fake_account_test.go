package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"nestbox.dev"
)

// fakeAccounts is a control plane with just the account and team routes,
// and GET /v1/capsules to see which credential a client verb sends. Its
// one user, ada@example.com (password "secret pw"), belongs to two teams.
type fakeAccounts struct {
	url, dataDir string

	mu sync.Mutex
	// access and refresh are the live session's tokens ("" before a
	// log-in); n counts the tokens made, so each pair is new.
	access, refresh string
	n               int
	// expiresIn is the lifetime of the access tokens it hands out.
	expiresIn time.Duration
	// refreshFails refuses every refresh.
	refreshFails bool
	team         string
	signUps      []map[string]string
	refreshes    int
	loggedOut    bool
	// capsuleKeys are the credentials GET /v1/capsules was sent with.
	capsuleKeys []string
	// paths are the paths and bodies of the team routes.
	paths []string
}

const adaTeam, otherTeam = "team_ada", "team_two"

func newFakeAccounts(t *testing.T) *fakeAccounts {
	f := &fakeAccounts{dataDir: t.TempDir(), expiresIn: 15 * time.Minute, team: adaTeam}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/auth/signup", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.signUps = append(f.signUps, body)
		f.mu.Unlock()
		fakeJSON(w, http.StatusAccepted, map[string]string{"status": "verification_sent"})
	})
	mux.HandleFunc("POST /v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		if body["email"] != "ada@example.com" || body["password"] != "secret pw" {
			fakeError(w, http.StatusUnauthorized, "unauthenticated", "wrong email or password")
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.team = adaTeam
		fakeJSON(w, http.StatusOK, f.newTokens())
	})
	mux.HandleFunc("POST /v1/auth/refresh", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.refreshFails || body["refresh_token"] != f.refresh || f.refresh == "" {
			fakeError(w, http.StatusUnauthorized, "unauthenticated", "invalid refresh token")
			return
		}
		f.refreshes++
		fakeJSON(w, http.StatusOK, f.newTokens())
	})
	session := func(h func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			ok := f.access != "" && r.Header.Get("X-API-Key") == f.access
			f.mu.Unlock()
			if !ok {
				fakeError(w, http.StatusUnauthorized, "unauthenticated", "invalid session")
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("POST /v1/auth/logout", session(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.loggedOut, f.access, f.refresh = true, "", ""
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /v1/auth/switch", session(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		if body["team_id"] != adaTeam && body["team_id"] != otherTeam {
			fakeError(w, http.StatusNotFound, "not_found", "team not found")
			return
		}
		f.mu.Lock()
		f.team = body["team_id"]
		f.mu.Unlock()
		fakeJSON(w, http.StatusOK, body)
	}))
	mux.HandleFunc("GET /v1/teams", session(func(w http.ResponseWriter, r *http.Request) {
		at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		fakeJSON(w, http.StatusOK, map[string][]nestbox.Team{"teams": {
			{ID: adaTeam, Name: "ada's", Role: "owner", CreatedAt: at},
			{ID: otherTeam, Name: "two", Role: "member", CreatedAt: at},
		}})
	}))
	mux.HandleFunc("GET /v1/teams/{id}/members", session(func(w http.ResponseWriter, r *http.Request) {
		f.record(r.URL.Path)
		fakeJSON(w, http.StatusOK, map[string][]nestbox.Member{"members": {
			{UserID: "usr_ada", Email: "ada@example.com", Name: "Ada", Role: "owner"},
			{UserID: "usr_bob", Email: "bob@example.com", Role: "member"},
		}})
	}))
	mux.HandleFunc("POST /v1/teams/{id}/invitations", session(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		f.record(r.URL.Path + " " + body["email"] + " " + body["role"])
		fakeJSON(w, http.StatusCreated, nestbox.Invitation{ID: "inv_1", TeamID: r.PathValue("id"), Email: body["email"], Role: body["role"],
			ExpiresAt: time.Now().Add(7 * 24 * time.Hour)})
	}))
	mux.HandleFunc("GET /v1/capsules", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.capsuleKeys = append(f.capsuleKeys, r.Header.Get("X-API-Key"))
		f.mu.Unlock()
		fakeJSON(w, http.StatusOK, nestbox.CapsuleList{Capsules: []nestbox.Capsule{}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// newTokens makes the next session tokens; the caller holds f.mu.
func (f *fakeAccounts) newTokens() nestbox.Tokens {
	f.n++
	f.access = "nbs_access" + string(rune('0'+f.n))
	f.refresh = "nbr_refresh" + string(rune('0'+f.n))
	now := time.Now()
	return nestbox.Tokens{AccessToken: f.access, RefreshToken: f.refresh, ExpiresAt: now.Add(f.expiresIn),
		RefreshExpiresAt: now.Add(30 * 24 * time.Hour), UserID: "usr_ada", TeamID: f.team}
}

func (f *fakeAccounts) record(s string) {
	f.mu.Lock()
	f.paths = append(f.paths, s)
	f.mu.Unlock()
}

// run runs a verb group against f with stdin, the environment naming f
// and f's data directory (kept across runs, as a user's is) plus env.
func (f *fakeAccounts) run(t *testing.T, group func(context.Context, []string, IO) error, stdin string, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	stdio := IO{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return map[string]string{"NESTBOX_URL": f.url, "NESTBOX_DATA_DIR": f.dataDir}[k]
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := group(ctx, args, stdio)
	return result{stdout.String(), stderr.String(), err}
}
