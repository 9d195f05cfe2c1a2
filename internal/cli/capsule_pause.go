package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"nestbox.dev"
)

// capsulePause is `nestbox capsule pause`: it pauses each capsule and
// waits until its pause has ended, showing progress on a terminal.
func capsulePause(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "capsule pause", "[flags] ID...", "Pause capsules to disk, with their memory; `capsule resume` brings them back.")
	noMemory := c.fs.Bool("no-memory", false, "keep only the disk: the resume boots the capsule fresh from its files")
	noWait := c.fs.Bool("no-wait", false, "return once the control plane has accepted, while the capsules pause")
	ids, err := c.parse(args, 1, -1)
	if err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	return eachCapsule(stdio, ids, "pause", nestbox.StatusPaused, func(id string) (nestbox.Capsule, error) {
		return client.Capsule(id).Pause(ctx, !*noMemory, waitOpts(*noWait)...)
	})
}

// capsuleResume is `nestbox capsule resume`.
func capsuleResume(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "capsule resume", "[flags] ID...", "Resume paused capsules and wait until they run.")
	timeout := c.fs.Duration("timeout", 0, "lifetime from the resume, e.g. 10m (default: what the capsule had left when paused)")
	noWait := c.fs.Bool("no-wait", false, "return once the control plane has accepted, while the capsules resume")
	reboot := c.fs.Bool("reboot", false, "boot from the disk without the memory: files kept, processes started anew")
	ids, err := c.parse(args, 1, -1)
	if err != nil {
		return err
	}
	if *timeout < 0 {
		return c.usageError("--timeout must not be negative")
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	return eachCapsule(stdio, ids, "resume", nestbox.StatusRunning, func(id string) (nestbox.Capsule, error) {
		if *reboot {
			return client.Capsule(id).Reboot(ctx, *timeout, waitOpts(*noWait)...)
		}
		return client.Capsule(id).Resume(ctx, *timeout, waitOpts(*noWait)...)
	})
}

func waitOpts(noWait bool) []nestbox.WaitOption {
	if noWait {
		return []nestbox.WaitOption{nestbox.NoWait()}
	}
	return nil
}

// eachCapsule runs op on each capsule, showing "pausing ID... paused
// (1.2s)" on a terminal, prints the ID of each that ended in want (or is
// on its way with --no-wait) and reports the others' errors together.
func eachCapsule(stdio IO, ids []string, verb string, want nestbox.Status, op func(id string) (nestbox.Capsule, error)) error {
	var errs []error
	for _, id := range ids {
		start := time.Now()
		if stdio.StderrIsTerminal {
			fmt.Fprintf(stdio.Stderr, "%sing capsule %s... ", verb[:len(verb)-1], id)
		}
		cp, err := op(id)
		if stdio.StderrIsTerminal {
			if err == nil {
				fmt.Fprintf(stdio.Stderr, "%s (%.1fs)\n", cp.Status, time.Since(start).Seconds())
			} else {
				fmt.Fprintln(stdio.Stderr)
			}
		}
		switch {
		case err != nil:
			errs = append(errs, err)
		case cp.Status != want && !cp.Status.Final() && cp.Status != nestbox.StatusRunning && cp.Status != nestbox.StatusPaused:
			fmt.Fprintln(stdio.Stdout, id) // --no-wait: on its way
		case cp.Status != want:
			msg := fmt.Sprintf("%s capsule %s: it is %s", verb, id, cp.Status)
			if cp.Error != "" {
				msg += ": " + cp.Error
			}
			errs = append(errs, errors.New(msg))
		default:
			fmt.Fprintln(stdio.Stdout, id)
		}
	}
	return errors.Join(errs...)
}
