package cli

import (
	"context"
	"strconv"
	"time"

	"nestbox.dev"
)

// templateList is `nestbox template ls`.
func templateList(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "template ls", "[flags]", "List the templates capsules can start from.")
	jsonOut := c.fs.Bool("json", false, "print {\"templates\": [...]} as JSON")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	ts, err := client.Templates(ctx)
	if err != nil {
		return err
	}
	if *jsonOut {
		if ts == nil {
			ts = []nestbox.Template{}
		}
		return printJSON(stdio.Stdout, nestbox.TemplateList{Templates: ts})
	}
	now := time.Now()
	t := newTable(stdio.Stdout, "NAME", "SIZE", "POOL", "CREATED", "DESCRIPTION")
	for _, tp := range ts {
		pool := "-"
		if tp.SnapshotID != "" {
			pool = strconv.Itoa(tp.PoolSize)
		}
		t.row(tp.Name, bytesIEC(uint64(max(tp.SizeBytes, 0))), pool, ago(tp.CreatedAt, now), tp.Description)
	}
	return t.flush()
}
