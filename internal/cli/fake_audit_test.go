package cli

import (
	"net/http"
	"time"

	"nestbox.dev"
)

// auditRoutes serve two pages of one entry each, for the team's log and
// the platform's alike, and record what was asked.
func (f *fakeServer) auditRoutes(mux *http.ServeMux) {
	serve := func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.auditQueries = append(f.auditQueries, r.URL.Path+"?"+r.URL.RawQuery)
		at := time.Now().Add(-time.Hour - time.Minute)
		page := nestbox.AuditEntryList{Entries: []nestbox.AuditEntry{{ID: "aud_1", Time: at, Scope: nestbox.AuditScopeTeam, TeamID: "team_1",
			Actor:        nestbox.AuditActor{Type: nestbox.AuditActorUser, ID: "usr_1", Name: "ada@example.com"},
			ResourceType: "capsule", ResourceID: "cap1", Action: "capsule.pause", Status: nestbox.AuditSuccess}}, NextCursor: "page2"}
		if r.URL.Query().Get("cursor") == "page2" {
			page = nestbox.AuditEntryList{Entries: []nestbox.AuditEntry{{ID: "aud_0", Time: at.Add(-time.Hour), Scope: nestbox.AuditScopeAdmin, TeamID: "team_platform",
				Actor:        nestbox.AuditActor{Type: nestbox.AuditActorAPIKey, ID: "key_1", Name: "ci"},
				ResourceType: "host", ResourceID: "host_1", Action: "host.cordon", Status: nestbox.AuditFailure}}}
		}
		fakeJSON(w, http.StatusOK, page)
	}
	mux.HandleFunc("GET /v1/audit-logs", serve)
	mux.HandleFunc("GET /v1/admin/audit-logs", serve)
}
