package cli

import (
	"context"
	"errors"
	"fmt"
)

// capsuleRemove is `nestbox capsule rm`: it destroys each capsule, prints
// the IDs of those it destroyed and reports the others' errors together.
func capsuleRemove(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "capsule rm", "[flags] ID...", "Destroy capsules and wait until they are gone.")
	noWait := c.fs.Bool("no-wait", false, "return once the control plane has accepted, while the capsules stop")
	ids, err := c.parse(args, 1, -1)
	if err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	opts := waitOpts(*noWait)
	var errs []error
	for _, id := range ids {
		if _, err := client.Capsule(id).Kill(ctx, opts...); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(stdio.Stdout, id)
	}
	return errors.Join(errs...)
}
