package server

import (
	"cmp"
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/audit"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// The audit log's side of the HTTP layer: record, which every audited
// handler calls once, and the two routes that read the log.

// record writes the audit entry of what r did. The handler gives what only
// it knows: the scope, the action, the resource's ID, metadata, and the
// team when it is not the one r acts for (the team routes name theirs in
// the path). record derives the rest once for every caller: the actor from
// r's principal, the team (r's for scope team, the platform team for scope
// admin), and, when err is not nil, the status failure with err's code in
// the metadata. An entry that cannot be written is logged, not returned:
// the action has happened (or failed) whatever the log says.
func (s *Server) record(r *http.Request, e audit.Entry, err error) {
	ctx := context.WithoutCancel(r.Context())
	p, _ := r.Context().Value(principalKey{}).(principal)
	e.Actor = s.auditActor(ctx, p)
	switch {
	case e.Scope == nestbox.AuditScopeAdmin:
		e.TeamID = s.cfg.PlatformTeamID
	case e.TeamID == "":
		e.TeamID = p.TeamID
	}
	code := ""
	if err != nil {
		// A failure in a team the caller is not in (a probe of another
		// team's routes, answered 404) is not that team's to read: it
		// would show them the caller's name.
		if e.Scope == nestbox.AuditScopeTeam && e.TeamID != p.TeamID && !s.isMember(ctx, e.TeamID, creator(r)) {
			return
		}
		e.Status = nestbox.AuditFailure
		code = errorCode(err)
	}
	e.Metadata = clipMetadata(e.Metadata, code)
	if err := s.cfg.Audit.Record(ctx, e); err != nil {
		s.log.Error("write audit entry", "action", e.Action, "resource", e.ResourceID, "err", err)
	}
}

// isMember reports whether userID is a member of team.
func (s *Server) isMember(ctx context.Context, teamID, userID string) bool {
	if userID == "" {
		return false
	}
	_, err := s.store.MemberRole(ctx, teamID, userID)
	return err == nil
}

// clipMetadata returns meta with each value cut to the audit log's bound
// (values come from requests: an over-long one must not lose the entry)
// and, if code is not "", the error's code under "error".
func clipMetadata(meta map[string]string, code string) map[string]string {
	if len(meta) == 0 && code == "" {
		return nil
	}
	out := make(map[string]string, len(meta)+1)
	for k, v := range meta {
		if len(v) > audit.MaxMetadataValue {
			v = strings.ToValidUTF8(v[:audit.MaxMetadataValue], "")
		}
		out[k] = v
	}
	if code != "" {
		out["error"] = code
	}
	return out
}

// auditActor is who acts in a request with principal p: a session's user
// (named by its name, else its email), an API key, or, with neither, the
// platform.
func (s *Server) auditActor(ctx context.Context, p principal) audit.Actor {
	switch {
	case p.Session != nil:
		name := ""
		if u, err := s.store.GetUser(ctx, p.UserID); err == nil {
			name = cmp.Or(u.Name, u.Email)
		}
		return audit.UserActor(p.UserID, name)
	case p.Key.ID != "":
		return audit.KeyActor(p.Key.ID, p.Key.Name)
	}
	return audit.SystemActor()
}

// teamEntry and adminEntry are the entries of the two scopes, for record.
func teamEntry(action, resourceID string, meta map[string]string) audit.Entry {
	return audit.Entry{Scope: nestbox.AuditScopeTeam, Action: action, ResourceID: resourceID, Metadata: meta}
}

func adminEntry(action, resourceID string, meta map[string]string) audit.Entry {
	return audit.Entry{Scope: nestbox.AuditScopeAdmin, Action: action, ResourceID: resourceID, Metadata: meta}
}

// pathTeamEntry is a team entry of the team the path names (the team
// routes, /v1/teams/{id}/...).
func pathTeamEntry(r *http.Request, action, resourceID string, meta map[string]string) audit.Entry {
	e := teamEntry(action, resourceID, meta)
	e.TeamID = r.PathValue("id")
	return e
}

// listAuditLogs is GET /v1/audit-logs: the entries of the caller's team,
// scope team only (the platform team's admin entries are not its
// members').
func (s *Server) listAuditLogs(w http.ResponseWriter, r *http.Request) {
	f, err := parseAuditQuery(r, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f.TeamID, f.Scope = team(r), nestbox.AuditScopeTeam
	s.writeAuditPage(w, r, f)
}

// listAdminAuditLogs is GET /v1/admin/audit-logs: every entry of the
// platform, ?scope and ?team_id to narrow it.
func (s *Server) listAdminAuditLogs(w http.ResponseWriter, r *http.Request) {
	f, err := parseAuditQuery(r, true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeAuditPage(w, r, f)
}

func (s *Server) writeAuditPage(w http.ResponseWriter, r *http.Request, f store.AuditFilter) {
	es, next, err := s.cfg.Audit.List(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if es == nil {
		es = []nestbox.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, nestbox.AuditEntryList{Entries: es, NextCursor: next})
}

// parseAuditQuery reads ?resource_type, ?action (within it), ?actor,
// ?from and ?to (RFC 3339), ?limit (1 to 1000, default 100) and ?cursor;
// with admin also ?scope and ?team_id. Anything else is 400.
func parseAuditQuery(r *http.Request, admin bool) (store.AuditFilter, error) {
	var f store.AuditFilter
	for key, vals := range r.URL.Query() {
		v := vals[len(vals)-1]
		var err error
		switch key {
		case "resource_type":
			f.ResourceType = v
		case "action":
			f.Action = v
		case "actor":
			f.ActorID = v
		case "from":
			f.From, err = parseAuditTime(key, v)
		case "to":
			f.To, err = parseAuditTime(key, v)
		case "limit":
			n, cerr := strconv.Atoi(v)
			if cerr != nil || n < 1 || n > 1000 {
				err = errdefs.Invalid("limit %q: want 1 to 1000", v)
			}
			f.Limit = n
		case "cursor":
			f.Cursor = v
		case "scope":
			if !admin {
				err = errdefs.Invalid("scope: a team's audit log is scope team; the platform's is GET /v1/admin/audit-logs")
				break
			}
			f.Scope = nestbox.AuditScope(v)
			if f.Scope != nestbox.AuditScopeTeam && f.Scope != nestbox.AuditScopeAdmin {
				err = errdefs.Invalid("scope %q: want team or admin", v)
			}
		case "team_id":
			if !admin {
				err = errdefs.Invalid("team_id: a team's audit log is its own")
				break
			}
			f.TeamID = v
		default:
			err = errdefs.Invalid("unknown query parameter %q", key)
		}
		if err != nil {
			return f, err
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, errdefs.Invalid("from %s is not before to %s", f.From.Format(time.RFC3339), f.To.Format(time.RFC3339))
	}
	return f, nil
}

func parseAuditTime(key, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, errdefs.Invalid("%s %q: want an RFC 3339 time, e.g. 2026-01-02T15:04:05Z", key, v)
	}
	return t, nil
}
