package cli

import (
	"context"
	"time"

	"nestbox.dev"
)

// snapshotList is `nestbox snapshot ls`.
func snapshotList(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "snapshot ls", "[flags]", "List the team's snapshots, newest first: one page, or all with --all.")
	capsule := c.fs.String("capsule", "", "only snapshots taken of capsule `ID`")
	name := c.fs.String("name", "", "only the snapshot named `NAME` or NAME:TAG")
	limit := c.fs.Int("limit", 0, "page size, 1 to 100 (default 100)")
	cursor := c.fs.String("cursor", "", "continue a listing at this cursor (next_cursor of --json)")
	all := c.fs.Bool("all", false, "list all pages")
	jsonOut := c.fs.Bool("json", false, "print {\"snapshots\": [...], \"next_cursor\": ...} as JSON")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	if *limit < 0 || *limit > 100 {
		return c.usageError("--limit must be 1 to 100")
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	opts := nestbox.SnapshotListOptions{CapsuleID: *capsule, Name: *name, Limit: *limit, Cursor: *cursor}
	var list nestbox.SnapshotList
	for {
		page, err := client.Snapshots(ctx, opts)
		if err != nil {
			return err
		}
		list.Snapshots = append(list.Snapshots, page.Snapshots...)
		list.NextCursor = page.NextCursor
		if !*all || page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
	if list.Snapshots == nil {
		list.Snapshots = []nestbox.Snapshot{}
	}
	if *jsonOut {
		return printJSON(stdio.Stdout, list)
	}
	now := time.Now()
	t := newTable(stdio.Stdout, "ID", "NAME", "CAPSULE", "STATUS", "SIZE", "CREATED", "TEMPLATE")
	for _, sn := range list.Snapshots {
		t.row(sn.ID, sn.Name, sn.CapsuleID, string(sn.Status), bytesIEC(uint64(max(sn.SizeBytes, 0))), ago(sn.CreatedAt, now), sn.TemplateName)
	}
	return t.flush()
}
