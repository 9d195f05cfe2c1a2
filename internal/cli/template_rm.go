package cli

import (
	"context"
	"errors"
	"fmt"
)

// templateRemove is `nestbox template rm`: it removes templates made from
// snapshots (the snapshots stay).
func templateRemove(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "template rm", "[flags] NAME...", "Remove templates made from snapshots; the snapshots stay.")
	names, err := c.parse(args, 1, -1)
	if err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if err := client.DeleteTemplate(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("template %s: %w", name, err))
			continue
		}
		fmt.Fprintln(stdio.Stdout, name)
	}
	return errors.Join(errs...)
}
