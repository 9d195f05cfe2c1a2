package cli

import (
	"context"
	"fmt"
	"time"

	"nestbox.dev"
)

// capsuleSnapshot is `nestbox capsule snapshot`: it takes a snapshot of a
// running capsule and prints the snapshot's ID (with --json, the
// snapshot).
func capsuleSnapshot(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "capsule snapshot", "[flags] ID", "Snapshot a running capsule: its processes, memory and files, to start new capsules from (capsule create --template SNAPSHOT).")
	name := c.fs.String("name", "", "name the snapshot `NAME` or NAME:TAG (tag default), unique in the team")
	pause := c.fs.Bool("pause", false, "pause the capsule once the snapshot is taken (by default it runs on)")
	noWait := c.fs.Bool("no-wait", false, "return once the control plane has accepted, while the snapshot is taken")
	jsonOut := c.fs.Bool("json", false, "print the snapshot as JSON")
	ids, err := c.parse(args, 1, 1)
	if err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	if stdio.StderrIsTerminal {
		fmt.Fprintf(stdio.Stderr, "taking a snapshot of capsule %s... ", ids[0])
	}
	sn, err := client.Capsule(ids[0]).Snapshot(ctx, nestbox.SnapshotOptions{Name: *name, Pause: *pause}, waitOpts(*noWait)...)
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
	if *jsonOut {
		return printJSON(stdio.Stdout, sn)
	}
	fmt.Fprintln(stdio.Stdout, sn.ID)
	return nil
}
