package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"nestbox.dev"
)

// capsuleList is `nestbox capsule ls`.
func capsuleList(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "capsule ls", "[flags]", "List capsules: one page, or all with --all.")
	var (
		status, cursor string
		metadata       = pairsFlag{}
		limit          int
		all, jsonOut   bool
	)
	c.fs.StringVar(&status, "status", "", "only capsules in these `statuses`, comma-separated (starting, running, pausing, paused, resuming, stopping, stopped, error, missing)")
	c.fs.Var(metadata, "metadata", "only capsules with metadata `KEY=VALUE` (repeatable)")
	c.fs.IntVar(&limit, "limit", 0, "page size (default: the server's)")
	c.fs.StringVar(&cursor, "cursor", "", "continue a listing at this cursor (next_cursor of --json)")
	c.fs.BoolVar(&all, "all", false, "list all pages")
	c.fs.BoolVar(&jsonOut, "json", false, "print {\"capsules\": [...], \"next_cursor\": ...} as JSON")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	if limit < 0 {
		return c.usageError("--limit must not be negative")
	}
	opts := nestbox.ListOptions{Limit: limit, Cursor: cursor}
	for s := range strings.SplitSeq(status, ",") {
		if s = strings.TrimSpace(s); s != "" {
			opts.Status = append(opts.Status, nestbox.Status(s))
		}
	}
	if len(metadata) > 0 {
		opts.Metadata = metadata
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}

	var list nestbox.CapsuleList
	if all {
		for cp, err := range client.ListAll(ctx, opts) {
			if err != nil {
				return err
			}
			list.Capsules = append(list.Capsules, cp)
		}
	} else if list, err = client.List(ctx, opts); err != nil {
		return err
	}
	if list.Capsules == nil {
		list.Capsules = []nestbox.Capsule{}
	}
	if jsonOut {
		return printJSON(stdio.Stdout, list)
	}
	now := time.Now()
	t := newTable(stdio.Stdout, "ID", "TEMPLATE", "STATUS", "CREATED", "EXPIRES", "METADATA")
	for _, cp := range list.Capsules {
		expires := until(cp.ExpiresAt, now)
		switch cp.Status {
		case nestbox.StatusStopped, nestbox.StatusError:
			expires = ""
		case nestbox.StatusPaused, nestbox.StatusPausing, nestbox.StatusResuming:
			expires = "frozen" // the lifetime stops while paused
		}
		t.row(cp.ID, cp.Template, statusCell(cp.Status), ago(cp.CreatedAt, now), expires, pairs(cp.Metadata))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if list.NextCursor != "" {
		fmt.Fprintf(stdio.Stderr, "more capsules follow: pass --all, or --cursor %s\n", list.NextCursor)
	}
	return nil
}

// statusCell shows a transient status (work in flight: starting, pausing,
// resuming, stopping) with a trailing ellipsis, so that it reads as
// "on its way" beside the steady ones.
func statusCell(st nestbox.Status) string {
	switch st {
	case nestbox.StatusStarting, nestbox.StatusPausing, nestbox.StatusResuming, nestbox.StatusStopping:
		return string(st) + "…"
	}
	return string(st)
}
