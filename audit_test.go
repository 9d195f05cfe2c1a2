package nestbox_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"nestbox.dev"
)

// TestAuditLogs: the two calls ask their routes with the options as query
// parameters (scope and team only on the platform's), and decode a page.
func TestAuditLogs(t *testing.T) {
	var asked []*url.URL
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL)
		switch r.URL.Path {
		case "/v1/audit-logs", "/v1/admin/audit-logs":
			writeJSON(w, http.StatusOK, nestbox.AuditEntryList{Entries: []nestbox.AuditEntry{{ID: "aud_1", Action: "capsule.pause"}}, NextCursor: "next"})
		default:
			writeError(w, http.StatusNotFound, "not_found", "no such route")
		}
	}))
	ctx := context.Background()
	from := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	opts := nestbox.AuditListOptions{ResourceType: "capsule", Action: "pause", ActorID: "key_1", From: from, Scope: nestbox.AuditScopeAdmin, TeamID: "t1", Limit: 5, Cursor: "c"}
	l, err := c.AuditLogs(ctx, opts)
	if err != nil || len(l.Entries) != 1 || l.Entries[0].ID != "aud_1" || l.NextCursor != "next" {
		t.Fatalf("AuditLogs = %+v, %v", l, err)
	}
	if _, err := c.AdminAuditLogs(ctx, opts); err != nil {
		t.Fatal(err)
	}
	want := url.Values{"resource_type": {"capsule"}, "action": {"pause"}, "actor": {"key_1"}, "from": {"2026-01-02T03:04:05Z"}, "limit": {"5"}, "cursor": {"c"}}
	if got := asked[0].Query(); asked[0].Path != "/v1/audit-logs" || got.Encode() != want.Encode() {
		t.Errorf("AuditLogs asked %s, want the query %s", asked[0], want.Encode())
	}
	want.Set("scope", "admin")
	want.Set("team_id", "t1")
	if got := asked[1].Query(); asked[1].Path != "/v1/admin/audit-logs" || got.Encode() != want.Encode() {
		t.Errorf("AdminAuditLogs asked %s, want the query %s", asked[1], want.Encode())
	}
	if _, err := c.AuditLogs(ctx, nestbox.AuditListOptions{}); err != nil || asked[2].RawQuery != "" {
		t.Errorf("AuditLogs with no options: %v, query %q", err, asked[2].RawQuery)
	}
}
