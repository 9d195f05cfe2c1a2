package nestbox

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// AuditScope says whose audit log an entry belongs to: a team's (what its
// members and keys did to its capsules, snapshots, keys and members) or
// the platform's (what platform admins did, kept under the platform team).
type AuditScope string

// The scopes of audit entries.
const (
	AuditScopeTeam  AuditScope = "team"
	AuditScopeAdmin AuditScope = "admin"
)

// AuditActorType is what kind of actor did an audited action.
type AuditActorType string

// The kinds of actors: a user acting through a session, an API key (the
// key is the actor, whoever made it), or the platform itself (background
// work).
const (
	AuditActorUser   AuditActorType = "user"
	AuditActorAPIKey AuditActorType = "api_key"
	AuditActorSystem AuditActorType = "system"
)

// AuditStatus is whether an audited action succeeded.
type AuditStatus string

// The outcomes of an audited action.
const (
	AuditSuccess AuditStatus = "success"
	AuditFailure AuditStatus = "failure"
)

// AuditActor is who did an audited action. ID is the user's or the key's
// ID ("" for the system, and for a user whose account was purged: its
// entries then name "deleted-user").
type AuditActor struct {
	Type AuditActorType `json:"type"`
	ID   string         `json:"id,omitempty"`
	Name string         `json:"name,omitempty"`
}

// AuditEntry is one record of the audit log. Action is the resource type,
// a dot and what was done ("capsule.pause", "member.remove"): filters
// nest, an action within its resource type.
type AuditEntry struct {
	ID           string            `json:"id"`
	Time         time.Time         `json:"time"`
	Scope        AuditScope        `json:"scope"`
	TeamID       string            `json:"team_id,omitempty"`
	Actor        AuditActor        `json:"actor"`
	ResourceType string            `json:"resource_type"`
	ResourceID   string            `json:"resource_id,omitempty"`
	Action       string            `json:"action"`
	Status       AuditStatus       `json:"status"`
	Metadata     map[string]string `json:"metadata,omitempty"`
}

// AuditEntryList is the answer of GET /v1/audit-logs and GET
// /v1/admin/audit-logs: a page of entries, newest first.
type AuditEntryList struct {
	Entries []AuditEntry `json:"entries"`
	// NextCursor, when not empty, fetches the next page (?cursor=).
	NextCursor string `json:"next_cursor,omitempty"`
}

// AuditListOptions select a page of audit entries. Zero fields select
// all.
type AuditListOptions struct {
	// ResourceType keeps entries about this type of resource
	// ("capsule"); Action, which needs it, keeps one action within it
	// ("capsule.pause", or "pause").
	ResourceType, Action string
	// ActorID keeps entries of this user or API key.
	ActorID string
	// From and To keep entries at or after From and before To.
	From, To time.Time
	// Scope ("team" or "admin") and TeamID filter AdminAuditLogs only.
	Scope  AuditScope
	TeamID string
	// Limit is the page size, 1 to 1000; zero means 100.
	Limit int
	// Cursor is AuditEntryList.NextCursor of the previous page.
	Cursor string
}

func (o AuditListOptions) query(admin bool) url.Values {
	q := url.Values{}
	set := map[string]string{"resource_type": o.ResourceType, "action": o.Action, "actor": o.ActorID, "cursor": o.Cursor}
	if admin {
		set["scope"], set["team_id"] = string(o.Scope), o.TeamID
	}
	for k, v := range set {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !o.From.IsZero() {
		q.Set("from", o.From.UTC().Format(time.RFC3339Nano))
	}
	if !o.To.IsZero() {
		q.Set("to", o.To.UTC().Format(time.RFC3339Nano))
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	return q
}

// AuditLogs returns a page of the team's audit entries (scope team),
// newest first.
func (c *Client) AuditLogs(ctx context.Context, opts AuditListOptions) (AuditEntryList, error) {
	var l AuditEntryList
	err := c.do(ctx, http.MethodGet, "/v1/audit-logs", opts.query(false), nil, &l)
	return l, err
}

// AdminAuditLogs returns a page of the platform's audit entries, every
// team's and the admins', newest first. Platform admins only.
func (c *Client) AdminAuditLogs(ctx context.Context, opts AuditListOptions) (AuditEntryList, error) {
	var l AuditEntryList
	err := c.do(ctx, http.MethodGet, "/v1/admin/audit-logs", opts.query(true), nil, &l)
	return l, err
}
