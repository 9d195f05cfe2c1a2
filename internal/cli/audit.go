package cli

import (
	"context"
	"time"

	"nestbox.dev"
)

var auditVerbs = []verb{
	{"ls", "list audit entries, newest first", auditList},
}

// Audit runs `nestbox audit <verb> ...`.
func Audit(ctx context.Context, args []string, stdio IO) error {
	return dispatch(ctx, "audit", auditVerbs, args, stdio)
}

// auditList is `nestbox audit ls`.
func auditList(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "audit ls", "[flags]",
		"List the team's audit log, newest first: who did what to which resource.\n"+
			"With --admin, the platform's (platform admins only): every team's and the admins'.")
	admin := c.fs.Bool("admin", false, "the platform's log (GET /v1/admin/audit-logs) instead of the team's")
	resourceType := c.fs.String("resource-type", "", "only entries about this `TYPE` of resource: capsule, snapshot, template, api_key, member, invitation, team, user, host, join_token")
	action := c.fs.String("action", "", "only this `ACTION` within --resource-type (e.g. pause, or capsule.pause)")
	actor := c.fs.String("actor", "", "only entries of this user or API key `ID`")
	since := c.fs.String("since", "", "only entries since a `DURATION` ago (e.g. 24h) or an RFC 3339 time")
	scope := c.fs.String("scope", "", "with --admin: only `SCOPE` team or admin")
	limit := c.fs.Int("limit", 0, "page size, 1 to 1000 (default 100)")
	cursor := c.fs.String("cursor", "", "continue a listing at this cursor (next_cursor of --json)")
	all := c.fs.Bool("all", false, "list all pages")
	jsonOut := c.fs.Bool("json", false, "print {\"entries\": [...], \"next_cursor\": ...} as JSON")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	if *limit < 0 || *limit > 1000 {
		return c.usageError("--limit must be 1 to 1000")
	}
	if *action != "" && *resourceType == "" {
		return c.usageError("--action needs --resource-type: actions nest within a resource type")
	}
	if *scope != "" && !*admin {
		return c.usageError("--scope needs --admin: the team's log is scope team")
	}
	now := time.Now()
	opts := nestbox.AuditListOptions{ResourceType: *resourceType, Action: *action, ActorID: *actor,
		Scope: nestbox.AuditScope(*scope), Limit: *limit, Cursor: *cursor}
	if *since != "" {
		if d, err := time.ParseDuration(*since); err == nil && d > 0 {
			opts.From = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339, *since); err == nil {
			opts.From = t
		} else {
			return c.usageError("--since: want a duration such as 24h or a time such as 2026-01-02T15:04:05Z")
		}
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	list := nestbox.AuditEntryList{Entries: []nestbox.AuditEntry{}}
	for {
		var page nestbox.AuditEntryList
		if *admin {
			page, err = client.AdminAuditLogs(ctx, opts)
		} else {
			page, err = client.AuditLogs(ctx, opts)
		}
		if err != nil {
			return err
		}
		list.Entries = append(list.Entries, page.Entries...)
		list.NextCursor = page.NextCursor
		if !*all || page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
	if *jsonOut {
		return printJSON(stdio.Stdout, list)
	}
	header := []string{"TIME", "ACTOR", "ACTION", "RESOURCE", "STATUS"}
	if *admin {
		header = append(header, "SCOPE", "TEAM")
	}
	t := newTable(stdio.Stdout, header...)
	for _, e := range list.Entries {
		row := []string{ago(e.Time, now), actorLabel(e.Actor), e.Action, e.ResourceID, string(e.Status)}
		if *admin {
			row = append(row, string(e.Scope), e.TeamID)
		}
		t.row(row...)
	}
	return t.flush()
}

// actorLabel names an actor in a table: its name, else its kind and ID.
func actorLabel(a nestbox.AuditActor) string {
	switch {
	case a.Name != "" && a.Type == nestbox.AuditActorAPIKey:
		return "key " + a.Name
	case a.Name != "":
		return a.Name
	case a.ID != "":
		return string(a.Type) + " " + a.ID
	}
	return string(a.Type)
}
