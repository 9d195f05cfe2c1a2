package cli

import (
	"context"
	"fmt"
)

// templateCreate is `nestbox template create NAME --from-snapshot SNAPSHOT`.
func templateCreate(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "template create", "[flags] NAME", "Make a template from a snapshot: capsule create --template NAME then starts from the snapshot.")
	from := c.fs.String("from-snapshot", "", "the snapshot's `ID` or name (required)")
	names, err := c.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if *from == "" {
		return c.usageError("--from-snapshot is required: templates are made from snapshots")
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	t, err := client.CreateTemplate(ctx, names[0], *from)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdio.Stdout, t.Name)
	return nil
}
