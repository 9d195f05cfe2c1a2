package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"nestbox.dev"
)

// capsuleFork is `nestbox capsule fork`: it branches a running capsule
// into new ones and prints each fork's ID, one per line, in order.
func capsuleFork(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "capsule fork", "[flags] ID", "Fork a running capsule: new capsules that start with its processes, memory and files.")
	count := c.fs.Int("count", 1, "how many forks, 1 to 10")
	timeout := c.fs.Duration("timeout", 0, "each fork's lifetime, e.g. 10m (default 5m)")
	noWait := c.fs.Bool("no-wait", false, "return once the control plane has accepted, while the forks start")
	ids, err := c.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if *count < 1 || *timeout < 0 {
		return c.usageError("--count must be at least 1 and --timeout not negative")
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	if stdio.StderrIsTerminal {
		fmt.Fprintf(stdio.Stderr, "forking capsule %s into %d... ", ids[0], *count)
	}
	forks, err := client.Capsule(ids[0]).Fork(ctx, *count, *timeout, waitOpts(*noWait)...)
	if stdio.StderrIsTerminal {
		if err == nil {
			fmt.Fprintf(stdio.Stderr, "done (%.1fs)\n", time.Since(start).Seconds())
		} else {
			fmt.Fprintln(stdio.Stderr)
		}
	}
	if err != nil {
		return err
	}
	var errs []error
	for i, f := range forks {
		switch {
		case f.Error != nil:
			errs = append(errs, fmt.Errorf("fork %d of %s: %s: %s", i+1, ids[0], f.Error.Code, f.Error.Message))
		case f.Capsule.Status == nestbox.StatusError:
			errs = append(errs, fmt.Errorf("fork %d of %s (capsule %s): %s", i+1, ids[0], f.Capsule.ID, f.Capsule.Error))
		default:
			fmt.Fprintln(stdio.Stdout, f.Capsule.ID)
		}
	}
	return errors.Join(errs...)
}
