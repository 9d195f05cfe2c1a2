package server

import (
	"net/http"
	"strings"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// Handler maps the control plane's whole HTTP surface. docs/api.md and
// openapi.yaml describe it; a test checks the spec against this table.
//
//	GET    /health                                   no auth: 200 when ready
//	GET    /openapi.yaml                             no auth: the API's spec
//	POST   /v1/capsules                              202 create (starting)
//	GET    /v1/capsules                              list: ?status, ?metadata.K=V, ?limit, ?cursor
//	GET    /v1/capsules/usage                        the team's usage per day: ?from&to (at most 92 days)
//	GET    /v1/capsules/{id}                         get; ?wait=STATUS&timeout=D blocks
//	DELETE /v1/capsules/{id}                         202 destroy (stopping)
//	POST   /v1/capsules/{id}/pause                   202 pause (pausing); 409 if paused
//	POST   /v1/capsules/{id}/resume                  202 resume (resuming); 409 unless paused
//	POST   /v1/capsules/{id}/fork                    202 fork {count, timeout_seconds}: the source and each fork (starting)
//	POST   /v1/capsules/{id}/snapshots               202 snapshot {name, pause} (creating); 201 once ready with ?wait=true
//	POST   /v1/capsules/{id}/timeout                 extend the lifetime
//	GET    /v1/capsules/{id}/metrics                 resource use
//	GET    /v1/capsules/{id}/events                  status history
//	POST   /v1/capsules/{id}/exec                    one-shot or background command
//	GET    /v1/capsules/{id}/exec/stream             WebSocket: a command's output live
//	GET    /v1/capsules/{id}/processes               running processes
//	POST   /v1/capsules/{id}/processes/{pid}/signal  signal a process
//	GET    /v1/capsules/{id}/pty                     WebSocket: an interactive terminal
//	GET    /v1/capsules/{id}/files                   download ?path
//	PUT    /v1/capsules/{id}/files                   upload ?path (raw body, streamed)
//	DELETE /v1/capsules/{id}/files                   remove ?path
//	GET    /v1/capsules/{id}/files/list              list ?path&depth
//	GET    /v1/capsules/{id}/files/stat              stat ?path
//	POST   /v1/capsules/{id}/files/mkdir             make a directory
//	POST   /v1/keys                                  201 create an API key
//	GET    /v1/keys                                  list the team's keys
//	DELETE /v1/keys/{id}                             revoke a key
//	POST   /v1/auth/signup                           no auth: 202, mails a verification link
//	GET    /v1/auth/verify                           no auth: ?token from the link activates the account
//	POST   /v1/auth/login                            no auth: a session's access and refresh tokens
//	POST   /v1/auth/refresh                          no auth: new tokens for a refresh token
//	POST   /v1/auth/logout                           session: ends it
//	POST   /v1/auth/password                         session: a new password, given the current one
//	POST   /v1/auth/password-reset                   no auth: 202, mails a reset token
//	POST   /v1/auth/password-reset/confirm           no auth: a new password with the token
//	DELETE /v1/users/me                              session: 202 soft delete (15-day grace)
//	POST   /v1/auth/switch                           session: act for another of the user's teams
//	GET    /v1/teams                                 the acting user's teams and roles
//	POST   /v1/teams                                 201 a team the user owns
//	GET    /v1/teams/{id}/members                    members and roles (any member)
//	PATCH  /v1/teams/{id}/members/{user}             {role}: admin or member (owner, admins)
//	DELETE /v1/teams/{id}/members/{user}             remove (owner, admins; or oneself); never the owner
//	PUT    /v1/teams/{id}/owner                      {user_id}: hand the team to a member (owner)
//	POST   /v1/teams/{id}/invitations                201 mail an invitation {email, role} (owner, admins)
//	GET    /v1/teams/{id}/invitations                pending invitations (owner, admins)
//	DELETE /v1/teams/{id}/invitations/{inv}          withdraw (owner, admins)
//	GET    /v1/teams/{id}/settings                   {members_mint_keys} (any member)
//	PUT    /v1/teams/{id}/settings                   replace them (owner, admins)
//	POST   /v1/invitations/accept                    session: {token} joins its user to the team
//	PUT    /v1/admin/users/{id}/admin                platform admin: grant or revoke {admin}
//	POST   /v1/admin/users/{id}/restore              platform admin: undo a deletion
//	GET    /v1/admin/users                           platform admin: every user, ?limit&after
//	PUT    /v1/admin/users/{id}/status               platform admin: {status: active|disabled}
//	GET    /v1/admin/teams                           platform admin: every team, ?limit&after
//	PUT    /v1/admin/teams/{id}/byoc                 platform admin: {byoc: true|false}, a flag only
//	DELETE /v1/admin/teams/{id}                      platform admin: soft delete (keys, sessions, capsules gone)
//	GET    /v1/admin/teams/{id}/limits               platform admin: the team's own limits (null: the default)
//	PUT    /v1/admin/teams/{id}/limits               platform admin: replace them {capsules, vcpus, memory_mb, snapshots, disk_mb}
//	GET    /v1/audit-logs                            the team's audit entries: ?resource_type&action, ?actor, ?from&to, ?limit, ?cursor
//	GET    /v1/admin/audit-logs                      platform admin: every audit entry, those filters and ?scope, ?team_id
//	GET    /v1/templates                             templates (the hosts' and the team's own)
//	POST   /v1/templates                             201 a template from a snapshot {name, from_snapshot}
//	DELETE /v1/templates/{name}                      204 remove a template made from a snapshot
//	PUT    /v1/templates/{name}/pool                 the warm pool of a template made from a snapshot {size}
//	GET    /v1/snapshots                             list: ?capsule_id, ?name, ?limit, ?cursor
//	GET    /v1/snapshots/{id}                        get by ID or name; ?wait=true&timeout=D while creating
//	DELETE /v1/snapshots/{id}                        204; 409 while creating or backing a template
//	POST   /v1/hosts/sandbox-events                  host token: an agent's event
//	POST   /v1/hosts/register                        join token: 201 a host joins the fleet
//	POST   /v1/hosts/heartbeat                       host token: a fleet host's capacity
//	GET    /v1/admin/hosts                           admin: the fleet's hosts
//	GET    /v1/admin/hosts/{id}                      admin: one host
//	POST   /v1/admin/hosts/{id}/cordon|uncordon|drain admin: the host's scheduling state
//	DELETE /v1/admin/hosts/{id}                      admin: forget a host without live capsules
//	POST   /v1/admin/join-tokens                     admin: 201 a join token (secret shown once)
//	GET    /v1/admin/join-tokens                     admin: usable join tokens
//	DELETE /v1/admin/join-tokens/{id}                admin: revoke a join token
//	*      /proxy/{id}/{port}/{path...}              HTTP to a port of a capsule
//
// After these come the routes of extensions (Config.Extensions,
// extensions.go), behind the same authentication.
//
// It also serves E2B's dialect (internal/e2bcompat: /sandboxes,
// /v2/sandboxes) and routes requests addressed to a capsule the ways E2B's
// SDKs address them (traffic.go). A request no route takes gets 405 with
// Allow when its path has other methods, else 404, in E2B's error shape
// under E2B's prefixes and in the API's elsewhere (fallback.go).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	var raw []route
	var patterns []string
	for _, r := range s.routes() {
		if r.prefix != "" {
			raw = append(raw, r)
			continue
		}
		mux.HandleFunc(r.pattern, r.handler)
		patterns = append(patterns, r.pattern)
	}
	for _, r := range s.e2b.Routes() {
		mux.HandleFunc(r.Pattern, r.Handler)
		patterns = append(patterns, r.Pattern)
	}
	// No catch-all pattern: it would take every method of every path,
	// and hide from the mux which methods a path has (405).
	fb := &fallback{mux: mux, e2bPrefixes: s.e2b.Prefixes(), literal: literalPaths(patterns)}
	// Each branch returns the route label of the request's metrics: its
	// pattern, never its path (instrument.go).
	h := s.metrics.instrument(func(w http.ResponseWriter, r *http.Request) string {
		// Traffic for a capsule (E2B's routing) comes first: its paths
		// (/health, /files) are the capsule's, not the API's.
		if id, port, ok := s.sandboxTarget(r); ok {
			s.serveSandbox(w, r, id, port)
			return routeSandboxTraffic
		}
		if !s.ready() {
			w.Header().Set("Retry-After", "5")
			s.writeError(w, r, errdefs.Unavailable("Nestbox is starting (building templates); try again shortly"))
			return routeUnready
		}
		for _, rt := range raw {
			if strings.HasPrefix(r.URL.Path, rt.prefix) {
				rt.handler(w, r)
				return rt.pattern
			}
		}
		if !fb.serves(r) {
			// The extensions' routes come after the core's.
			if s.ext != nil {
				if _, pattern := s.ext.Handler(r); pattern != "" {
					s.ext.ServeHTTP(w, r)
					return r.Pattern
				}
			}
			fb.ServeHTTP(w, r)
			return routeUnmatched
		}
		// The mux sets r.Pattern to the pattern it matched.
		mux.ServeHTTP(w, r)
		return r.Pattern
	})
	for i := len(s.cfg.Middleware) - 1; i >= 0; i-- {
		h = s.cfg.Middleware[i](h)
	}
	return h
}

func (s *Server) ready() bool {
	if s.cfg.Ready == nil {
		return true
	}
	select {
	case <-s.cfg.Ready:
		return true
	default:
		return false
	}
}

type route struct {
	pattern string
	handler http.HandlerFunc
	// prefix, if set, matches the route by this prefix of the path as it
	// was sent, before the mux (which would clean the path and redirect):
	// the port proxy's paths are the capsule's. pattern documents it.
	prefix string
}

// routes is the table behind Handler, also read by the OpenAPI test.
func (s *Server) routes() []route {
	a := s.authenticated
	return []route{
		{"GET /health", s.health, ""},
		{"GET /openapi.yaml", s.openAPI, ""},
		{"POST /v1/capsules", a(s.createCapsule), ""},
		{"GET /v1/capsules", a(s.listCapsules), ""},
		{"GET /v1/capsules/usage", a(s.capsuleUsage), ""},
		{"GET /v1/capsules/{id}", a(s.getCapsule), ""},
		{"DELETE /v1/capsules/{id}", a(s.deleteCapsule), ""},
		{"POST /v1/capsules/{id}/pause", a(s.pauseCapsule), ""},
		{"POST /v1/capsules/{id}/resume", a(s.resumeCapsule), ""},
		{"POST /v1/capsules/{id}/fork", a(s.forkCapsule), ""},
		{"POST /v1/capsules/{id}/snapshots", a(s.createSnapshot), ""},
		{"POST /v1/capsules/{id}/timeout", a(s.setTimeout), ""},
		{"GET /v1/capsules/{id}/metrics", a(s.capsuleMetrics), ""},
		{"GET /v1/capsules/{id}/events", a(s.capsuleEvents), ""},
		{"POST /v1/capsules/{id}/exec", a(s.exec), ""},
		{"GET /v1/capsules/{id}/exec/stream", a(s.execStream), ""},
		{"GET /v1/capsules/{id}/processes", a(s.listProcesses), ""},
		{"POST /v1/capsules/{id}/processes/{pid}/signal", a(s.signalProcess), ""},
		{"GET /v1/capsules/{id}/pty", a(s.pty), ""},
		{"GET /v1/capsules/{id}/files", a(s.fileRoute(s.download)), ""},
		{"PUT /v1/capsules/{id}/files", a(s.fileRoute(s.upload)), ""},
		{"DELETE /v1/capsules/{id}/files", a(s.fileRoute(s.removeFile)), ""},
		{"GET /v1/capsules/{id}/files/list", a(s.fileRoute(s.listDir)), ""},
		{"GET /v1/capsules/{id}/files/stat", a(s.fileRoute(s.stat)), ""},
		{"POST /v1/capsules/{id}/files/mkdir", a(s.makeDir), ""},
		{"POST /v1/keys", a(s.createKey), ""},
		{"GET /v1/keys", a(s.listKeys), ""},
		{"DELETE /v1/keys/{id}", a(s.deleteKey), ""},
		{"POST /v1/auth/signup", s.signUp, ""},
		{"GET /v1/auth/verify", s.verifyEmail, ""},
		{"POST /v1/auth/login", s.logIn, ""},
		{"POST /v1/auth/refresh", s.refreshSession, ""},
		{"POST /v1/auth/logout", a(s.logOut), ""},
		{"POST /v1/auth/password", a(s.changePassword), ""},
		{"POST /v1/auth/password-reset", s.requestReset, ""},
		{"POST /v1/auth/password-reset/confirm", s.confirmReset, ""},
		{"DELETE /v1/users/me", a(s.deleteMe), ""},
		{"POST /v1/auth/switch", a(s.switchTeam), ""},
		{"GET /v1/teams", a(s.listTeams), ""},
		{"POST /v1/teams", a(s.createTeam), ""},
		{"GET /v1/teams/{id}/members", a(s.listMembers), ""},
		{"PATCH /v1/teams/{id}/members/{user}", a(s.setMemberRole), ""},
		{"DELETE /v1/teams/{id}/members/{user}", a(s.removeMember), ""},
		{"PUT /v1/teams/{id}/owner", a(s.transferTeam), ""},
		{"POST /v1/teams/{id}/invitations", a(s.invite), ""},
		{"GET /v1/teams/{id}/invitations", a(s.listInvitations), ""},
		{"DELETE /v1/teams/{id}/invitations/{inv}", a(s.withdrawInvitation), ""},
		{"GET /v1/teams/{id}/settings", a(s.getTeamSettings), ""},
		{"PUT /v1/teams/{id}/settings", a(s.putTeamSettings), ""},
		{"POST /v1/invitations/accept", a(s.acceptInvitation), ""},
		{"PUT /v1/admin/users/{id}/admin", s.platformAdmin(s.setAdmin), ""},
		{"POST /v1/admin/users/{id}/restore", s.platformAdmin(s.restoreUser), ""},
		{"GET /v1/admin/users", s.platformAdmin(s.listUsers), ""},
		{"PUT /v1/admin/users/{id}/status", s.platformAdmin(s.setUserStatus), ""},
		{"GET /v1/admin/teams", s.platformAdmin(s.listAllTeams), ""},
		{"PUT /v1/admin/teams/{id}/byoc", s.platformAdmin(s.setTeamBYOC), ""},
		{"DELETE /v1/admin/teams/{id}", s.platformAdmin(s.deleteTeam), ""},
		{"GET /v1/admin/teams/{id}/limits", s.platformAdmin(s.getTeamLimits), ""},
		{"PUT /v1/admin/teams/{id}/limits", s.platformAdmin(s.putTeamLimits), ""},
		{"GET /v1/audit-logs", a(s.listAuditLogs), ""},
		{"GET /v1/admin/audit-logs", s.platformAdmin(s.listAdminAuditLogs), ""},
		{"GET /v1/templates", a(s.listTemplates), ""},
		{"POST /v1/templates", a(s.createTemplate), ""},
		{"DELETE /v1/templates/{name}", a(s.deleteTemplate), ""},
		{"PUT /v1/templates/{name}/pool", a(s.setTemplatePool), ""},
		{"GET /v1/snapshots", a(s.listSnapshots), ""},
		{"GET /v1/snapshots/{id}", a(s.getSnapshot), ""},
		{"DELETE /v1/snapshots/{id}", a(s.deleteSnapshot), ""},
		{"POST /v1/hosts/sandbox-events", s.hostAuthenticated(s.hostEvent), ""},
		{"POST /v1/hosts/register", s.withFleet(s.registerHost), ""},
		{"POST /v1/hosts/heartbeat", s.hostAuthenticated(s.withFleet(s.hostHeartbeat)), ""},
		{"GET /v1/admin/hosts", s.platformAdmin(s.withFleet(s.listHosts)), ""},
		{"GET /v1/admin/hosts/{id}", s.platformAdmin(s.withFleet(s.getHost)), ""},
		{"POST /v1/admin/hosts/{id}/cordon", s.platformAdmin(s.withFleet(s.setHostState(store.HostCordoned))), ""},
		{"POST /v1/admin/hosts/{id}/uncordon", s.platformAdmin(s.withFleet(s.setHostState(store.HostActive))), ""},
		{"POST /v1/admin/hosts/{id}/drain", s.platformAdmin(s.withFleet(s.setHostState(store.HostDraining))), ""},
		{"DELETE /v1/admin/hosts/{id}", s.platformAdmin(s.withFleet(s.removeHost)), ""},
		{"POST /v1/admin/join-tokens", s.platformAdmin(s.withFleet(s.createJoinToken)), ""},
		{"GET /v1/admin/join-tokens", s.platformAdmin(s.withFleet(s.listJoinTokens)), ""},
		{"DELETE /v1/admin/join-tokens/{id}", s.platformAdmin(s.withFleet(s.deleteJoinToken)), ""},
		{"* /proxy/{id}/{port}/{path...}", a(s.serveProxy), "/proxy/"},
	}
}
