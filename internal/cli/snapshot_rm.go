package cli

import (
	"context"
	"errors"
	"fmt"
)

// snapshotRemove is `nestbox snapshot rm`: it deletes each snapshot (by ID
// or name), prints those it deleted and reports the others' errors
// together.
func snapshotRemove(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "snapshot rm", "[flags] SNAPSHOT...", "Delete snapshots by ID or name. Capsules started from them are not touched; a snapshot a template is made from is kept until the template is removed (template rm).")
	refs, err := c.parse(args, 1, -1)
	if err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, ref := range refs {
		if err := client.DeleteSnapshot(ctx, ref); err != nil {
			errs = append(errs, fmt.Errorf("snapshot %s: %w", ref, err))
			continue
		}
		fmt.Fprintln(stdio.Stdout, ref)
	}
	return errors.Join(errs...)
}
