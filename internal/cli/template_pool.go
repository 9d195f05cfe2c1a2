package cli

import (
	"context"
	"fmt"
	"strconv"
)

// templatePool is `nestbox template pool`: the warm pool of a template
// made from a snapshot.
func templatePool(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "template pool", "[flags] NAME SIZE",
		"Keep SIZE capsules of a template made from a snapshot restored and ready, so that a create of it takes milliseconds (0 removes the pool).")
	jsonOut := c.fs.Bool("json", false, "print the template as JSON")
	rest, err := c.parse(args, 2, 2)
	if err != nil {
		return err
	}
	size, err := strconv.Atoi(rest[1])
	if err != nil || size < 0 {
		return c.usageError(fmt.Sprintf("SIZE %q is not a number of 0 or more", rest[1]))
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	t, err := client.SetTemplatePool(ctx, rest[0], size)
	if err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdio.Stdout, t)
	}
	fmt.Fprintf(stdio.Stdout, "%s: pool of %d\n", t.Name, t.PoolSize)
	return nil
}
