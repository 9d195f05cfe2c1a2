package server_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/apikey"
	"nestbox.dev/internal/fleet"
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
	// admin routes are for platform admins: a key of a user who is not
	// one gets 403 (other and the team's valid key), the admin's key
	// gets valid. Every other route takes the admin's key as another
	// team's (other).
	admin bool
}

// TestAuthorizationMatrix sends every route of the server's route tables
// (its own and E2B's dialect) with no key, a malformed key, an unknown
// key, a revoked key, another team's key and a valid key, and checks the
// status of each. A route added to a table without a row here fails the
// test, as does a row for a route that is no longer served.
func TestAuthorizationMatrix(t *testing.T) {
	agent := newAgentProxy(t)
	e := newEnv(t, withAgentProxy(agent.url), withAccounts(&outbox{}, func(c *server.Config) {
		c.AuthPerAddress, c.AuthPerAccount = -1, -1 // every column tries the same email
		// An extension's routes (nestbox.dev/platform) share the core's
		// authentication: they are rows like the others.
		c.Extensions = []server.ExtensionRoute{
			{Pattern: "GET /v1/ext/matrix", Handler: func(w http.ResponseWriter, r *http.Request) {
				if _, ok := server.CallerOf(r.Context()); !ok {
					w.WriteHeader(http.StatusInternalServerError)
				}
			}},
			{Pattern: "GET /v1/ext/matrix-admin", Admin: true, Handler: func(w http.ResponseWriter, r *http.Request) {}},
		}
	}))
	ctx := t.Context()
	c := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})        // read and used
	doomed := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})   // destroyed by DELETE /v1/capsules/{id}
	killed := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})   // destroyed by DELETE /sandboxes/{id}
	toPause := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{})  // paused by POST /v1/capsules/{id}/pause
	toResume := e.paused(t, e.keyA, nestbox.CreateCapsuleRequest{})  // resumed by POST /v1/capsules/{id}/resume
	e2bPause := e.running(t, e.keyA, nestbox.CreateCapsuleRequest{}) // paused by POST /sandboxes/{id}/pause
	e2bResume := e.paused(t, e.keyA, nestbox.CreateCapsuleRequest{}) // resumed by POST /sandboxes/{id}/resume
	snapKeep := e.snapshot(t, e.keyA, c.ID, `{}`)                    // read
	snapDoomed := e.snapshot(t, e.keyA, c.ID, `{}`)                  // deleted by DELETE /v1/snapshots/{id}
	snapE2B := e.snapshot(t, e.keyA, c.ID, `{}`)                     // deleted by DELETE /templates/{id}
	snapTpl := e.snapshot(t, e.keyA, c.ID, `{}`)                     // made a template by POST /v1/templates
	snapTplDoomed := e.snapshot(t, e.keyA, c.ID, `{}`)               // its template deleted by DELETE /v1/templates/{name}
	if code, body := e.do(t, "POST", "/v1/templates", e.keyA, strings.NewReader(`{"name":"tpl-doomed","from_snapshot":"`+snapTplDoomed.ID+`"}`)); code != 201 {
		t.Fatalf("make template tpl-doomed: %d %s", code, body)
	}
	snapTplPool := e.snapshot(t, e.keyA, c.ID, `{}`) // its template's pool set by PUT /v1/templates/{name}/pool
	if code, body := e.do(t, "POST", "/v1/templates", e.keyA, strings.NewReader(`{"name":"tpl-pool","from_snapshot":"`+snapTplPool.ID+`"}`)); code != 201 {
		t.Fatalf("make template tpl-pool: %d %s", code, body)
	}

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
	invID := "inv_matrix" // withdrawn by DELETE /v1/teams/{id}/invitations/{inv}
	if err := e.store.CreateInvitation(ctx, store.Invitation{ID: invID, TeamID: "team_a", Email: "m@example.com", Role: store.RoleMember,
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, 100, now); err != nil {
		t.Fatal(err)
	}

	if err := e.store.CreateUser(ctx, store.User{ID: "u_spare", Email: "spare@example.com", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	// A platform admin: a key of the platform team (team_admin in newEnv)
	// made by a user who is an admin.
	if err := e.store.CreateUser(ctx, store.User{ID: "u_admin", Email: "admin@example.com", Admin: true, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateTeam(ctx, store.Team{ID: "team_admin", Name: "platform", CreatedAt: now}, "u_admin"); err != nil {
		t.Fatal(err)
	}
	// A team for DELETE /v1/admin/teams/{id} to delete.
	if err := e.store.CreateTeam(ctx, store.Team{ID: "team_doomed", Name: "doomed", CreatedAt: now}, "u_spare"); err != nil {
		t.Fatal(err)
	}
	keyAdmin, adminHash := apikey.New()
	if err := e.store.CreateAPIKey(ctx, store.APIKey{ID: "key_admin", TeamID: "team_admin", Name: "admin", Prefix: apikey.DisplayPrefix(keyAdmin), Hash: adminHash, CreatedBy: "u_admin", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	// Two hosts of the fleet (one to remove) and a spare join token.
	var hostIDs []string
	for range 2 {
		secret, _, err := e.fleet.CreateJoinToken(ctx, "", 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		j, err := e.fleet.Register(ctx, secret, fleet.Registration{Name: "h", URL: "http://127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		hostIDs = append(hostIDs, j.HostID)
	}
	_, spareToken, err := e.fleet.CreateJoinToken(ctx, "", 0, 1)
	if err != nil {
		t.Fatal(err)
	}

	id := c.ID
	rows := map[string]authzRow{
		"GET /health":       {method: "GET", path: "/health", valid: 200, public: true},
		"GET /openapi.yaml": {method: "GET", path: "/openapi.yaml", valid: 200, public: true},
		// Team-wide routes act on the caller's own team: another team's
		// key succeeds, for that team.
		"POST /v1/capsules":                             {method: "POST", path: "/v1/capsules", body: `{}`, other: 202, valid: 202},
		"GET /v1/capsules":                              {method: "GET", path: "/v1/capsules", other: 200, valid: 200},
		"GET /v1/capsules/usage":                        {method: "GET", path: "/v1/capsules/usage?from=2026-01-01&to=2026-01-31", other: 200, valid: 200},
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

		// Accounts. Sign-up, log-in and reset take no credential: every
		// column gets the same answer, whatever it presents.
		"POST /v1/auth/signup":                 {method: "POST", path: "/v1/auth/signup", body: `{"email":"matrix@example.com","password":"long enough"}`, valid: 202, public: true},
		"GET /v1/auth/verify":                  {method: "GET", path: "/v1/auth/verify?token=verify.usr_x.1.0.bad", valid: 400, public: true},
		"POST /v1/auth/login":                  {method: "POST", path: "/v1/auth/login", body: `{"email":"matrix@example.com","password":"wrong password"}`, valid: 401, public: true},
		"POST /v1/auth/refresh":                {method: "POST", path: "/v1/auth/refresh", body: `{"refresh_token":"nbr_0123456789abcdef0123456789abcdef01234567"}`, valid: 401, public: true},
		"POST /v1/auth/password-reset":         {method: "POST", path: "/v1/auth/password-reset", body: `{"email":"matrix@example.com"}`, valid: 202, public: true},
		"POST /v1/auth/password-reset/confirm": {method: "POST", path: "/v1/auth/password-reset/confirm", body: `{"token":"reset.usr_x.1.0.bad","password":"long enough"}`, valid: 400, public: true},
		// Log-out and deleting oneself take a session: an API key is 400.
		"POST /v1/auth/password": {method: "POST", path: "/v1/auth/password", body: `{"current_password":"x","new_password":"long enough"}`, other: 400, valid: 400},
		"POST /v1/auth/logout":   {method: "POST", path: "/v1/auth/logout", other: 400, valid: 400},
		"DELETE /v1/users/me":    {method: "DELETE", path: "/v1/users/me", other: 400, valid: 400},
		// Platform admin routes: a team's key is no admin, the platform
		// team's key made by an admin is (the sessions of admins and
		// non-admins: TestAdminRoutes). u_spare is a user without an account:
		// past the admin check, its restore and status are 404.
		"PUT /v1/admin/users/{id}/admin":    {method: "PUT", path: "/v1/admin/users/u_spare/admin", body: `{"admin":false}`, admin: true, valid: 200},
		"POST /v1/admin/users/{id}/restore": {method: "POST", path: "/v1/admin/users/u_spare/restore", admin: true, valid: 404},
		"GET /v1/admin/users":               {method: "GET", path: "/v1/admin/users", admin: true, valid: 200},
		"GET /v1/admin/teams":               {method: "GET", path: "/v1/admin/teams", admin: true, valid: 200},
		"PUT /v1/admin/teams/{id}/byoc":     {method: "PUT", path: "/v1/admin/teams/team_b/byoc", body: `{"byoc":true}`, admin: true, valid: 200},
		"DELETE /v1/admin/teams/{id}":       {method: "DELETE", path: "/v1/admin/teams/team_doomed", admin: true, valid: 200},
		"GET /v1/admin/teams/{id}/limits":   {method: "GET", path: "/v1/admin/teams/team_b/limits", admin: true, valid: 200},
		"PUT /v1/admin/teams/{id}/limits":   {method: "PUT", path: "/v1/admin/teams/team_b/limits", body: `{"capsules":50}`, admin: true, valid: 200},
		"PUT /v1/admin/users/{id}/status":   {method: "PUT", path: "/v1/admin/users/u_spare/status", body: `{"status":"active"}`, admin: true, valid: 404},
		// The audit log: a team's own entries (another team's key reads
		// its own team's, 200), and the platform's for admins only.
		"GET /v1/audit-logs":       {method: "GET", path: "/v1/audit-logs?resource_type=capsule&action=capsule.create", other: 200, valid: 200},
		"GET /v1/admin/audit-logs": {method: "GET", path: "/v1/admin/audit-logs?scope=admin", admin: true, valid: 200},
		// Teams act as the key's maker (u_team_a owns team_a, u_team_b
		// team_b): another team is 404, as if it did not exist.
		"POST /v1/auth/switch":                    {method: "POST", path: "/v1/auth/switch", body: `{"team_id":"team_a"}`, other: 400, valid: 400},
		"GET /v1/teams":                           {method: "GET", path: "/v1/teams", other: 200, valid: 200},
		"POST /v1/teams":                          {method: "POST", path: "/v1/teams", body: `{"name":"more"}`, other: 201, valid: 201},
		"GET /v1/teams/{id}/members":              {method: "GET", path: "/v1/teams/team_a/members", other: 404, valid: 200},
		"PATCH /v1/teams/{id}/members/{user}":     {method: "PATCH", path: "/v1/teams/team_a/members/u_team_a", body: `{"role":"member"}`, other: 404, valid: 409},
		"DELETE /v1/teams/{id}/members/{user}":    {method: "DELETE", path: "/v1/teams/team_a/members/u_team_a", other: 404, valid: 409},
		"PUT /v1/teams/{id}/owner":                {method: "PUT", path: "/v1/teams/team_a/owner", body: `{"user_id":"u_team_b"}`, other: 404, valid: 404},
		"POST /v1/teams/{id}/invitations":         {method: "POST", path: "/v1/teams/team_a/invitations", body: `{"email":"new@example.com"}`, other: 404, valid: 201},
		"GET /v1/teams/{id}/invitations":          {method: "GET", path: "/v1/teams/team_a/invitations", other: 404, valid: 200},
		"DELETE /v1/teams/{id}/invitations/{inv}": {method: "DELETE", path: "/v1/teams/team_a/invitations/" + invID, other: 404, valid: 204},
		"GET /v1/teams/{id}/settings":             {method: "GET", path: "/v1/teams/team_a/settings", other: 404, valid: 200},
		"PUT /v1/teams/{id}/settings":             {method: "PUT", path: "/v1/teams/team_a/settings", body: `{"members_mint_keys":false}`, other: 404, valid: 200},
		"POST /v1/invitations/accept":             {method: "POST", path: "/v1/invitations/accept", body: `{"token":"x"}`, other: 400, valid: 400},

		"POST /v1/templates":                 {method: "POST", path: "/v1/templates", body: `{"name":"tpl-a","from_snapshot":"` + snapTpl.ID + `"}`, other: 404, valid: 201},
		"DELETE /v1/templates/{name}":        {method: "DELETE", path: "/v1/templates/tpl-doomed", other: 404, valid: 204},
		"PUT /v1/templates/{name}/pool":      {method: "PUT", path: "/v1/templates/tpl-pool/pool", body: `{"size":1}`, other: 404, valid: 200},
		"POST /v1/capsules/{id}/snapshots":   {method: "POST", path: "/v1/capsules/" + id + "/snapshots", body: `{}`, other: 404, valid: 202},
		"GET /v1/snapshots":                  {method: "GET", path: "/v1/snapshots", other: 200, valid: 200},
		"GET /v1/snapshots/{id}":             {method: "GET", path: "/v1/snapshots/" + snapKeep.ID, other: 404, valid: 200},
		"DELETE /v1/snapshots/{id}":          {method: "DELETE", path: "/v1/snapshots/" + snapDoomed.ID, other: 404, valid: 204},
		"POST /v1/hosts/sandbox-events":      {method: "POST", path: "/v1/hosts/sandbox-events", body: `{}`, hostOnly: true},
		"POST /v1/hosts/register":            {method: "POST", path: "/v1/hosts/register", body: `{"url":"http://127.0.0.1:1"}`, hostOnly: true},
		"POST /v1/hosts/heartbeat":           {method: "POST", path: "/v1/hosts/heartbeat", body: `{"url":"http://127.0.0.1:1"}`, hostOnly: true},
		"GET /v1/admin/hosts":                {method: "GET", path: "/v1/admin/hosts", admin: true, valid: 200},
		"GET /v1/admin/hosts/{id}":           {method: "GET", path: "/v1/admin/hosts/" + hostIDs[0], admin: true, valid: 200},
		"POST /v1/admin/hosts/{id}/cordon":   {method: "POST", path: "/v1/admin/hosts/" + hostIDs[0] + "/cordon", admin: true, valid: 200},
		"POST /v1/admin/hosts/{id}/uncordon": {method: "POST", path: "/v1/admin/hosts/" + hostIDs[0] + "/uncordon", admin: true, valid: 200},
		"POST /v1/admin/hosts/{id}/drain":    {method: "POST", path: "/v1/admin/hosts/" + hostIDs[0] + "/drain", admin: true, valid: 200},
		"DELETE /v1/admin/hosts/{id}":        {method: "DELETE", path: "/v1/admin/hosts/" + hostIDs[1], admin: true, valid: 204},
		"POST /v1/admin/join-tokens":         {method: "POST", path: "/v1/admin/join-tokens", body: `{}`, admin: true, valid: 201},
		"GET /v1/admin/join-tokens":          {method: "GET", path: "/v1/admin/join-tokens", admin: true, valid: 200},
		"DELETE /v1/admin/join-tokens/{id}":  {method: "DELETE", path: "/v1/admin/join-tokens/" + spareToken.ID, admin: true, valid: 204},
		"GET /v1/ext/matrix":                 {method: "GET", path: "/v1/ext/matrix", other: 200, valid: 200},
		"GET /v1/ext/matrix-admin":           {method: "GET", path: "/v1/ext/matrix-admin", admin: true, valid: 200},
		"* /proxy/{id}/{port}/{path...}":     {method: "GET", path: "/proxy/" + id + "/8080/x", other: 404, valid: 200},

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
		"POST /sandboxes/{id}/fork":       {method: "POST", path: "/sandboxes/" + id + "/fork", body: `{"count":1}`, other: 404, valid: 201},
		"POST /sandboxes/{id}/snapshots":  {method: "POST", path: "/sandboxes/" + id + "/snapshots", body: `{}`, other: 404, valid: 201},
		"GET /snapshots":                  {method: "GET", path: "/snapshots", other: 200, valid: 200},
		"DELETE /templates/{id}":          {method: "DELETE", path: "/templates/" + snapE2B.ID + ":default", other: 404, valid: 204},
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

	type column struct {
		name, key string
		header    string // "X-API-Key" or "Authorization" (Bearer)
	}
	columns := []column{
		{"no key", "", "X-API-Key"},
		{"malformed key", "nbx_not-a-key", "X-API-Key"},
		{"malformed bearer", "Bearer", "Authorization"},
		{"unknown key", unknown, "X-API-Key"},
		{"unknown key (E2B form)", apikey.E2BForm(unknown), "X-API-Key"},
		{"revoked key", revoked, "X-API-Key"},
		{"revoked key as bearer", revoked, "Authorization"},
		{"the host token as a key", hostToken, "X-API-Key"},
		{"other team's key", e.keyB, "X-API-Key"},
		{"admin's key", keyAdmin, "X-API-Key"},
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
		cols := columns
		if row.admin {
			// The admin's key is the one that acts: it goes last.
			cols = append(slices.DeleteFunc(slices.Clone(columns), func(c column) bool { return c.name == "admin's key" }), columns[len(columns)-2])
		}
		for _, col := range cols {
			want := http.StatusUnauthorized
			switch {
			case row.hostOnly:
			case row.public:
				want = row.valid
			case row.admin && col.name == "admin's key":
				want = row.valid
			case row.admin && (col.name == "other team's key" || col.name == "valid key"):
				want = http.StatusForbidden
			case col.name == "other team's key", col.name == "admin's key":
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
