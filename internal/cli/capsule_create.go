package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"nestbox.dev"
)

// capsuleCreate is `nestbox capsule create`: it prints the new capsule's
// ID (or, with --json, the capsule) once it runs.
func capsuleCreate(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "capsule create", "[flags]", "Create a capsule, wait until it runs and print its ID.")
	var (
		req             nestbox.CreateCapsuleRequest
		timeout         time.Duration
		env             = pairsFlag{}
		metadata        = pairsFlag{}
		allowOut        listFlag
		denyOut         listFlag
		noInternet      bool
		privatePorts    bool
		noWait, jsonOut bool
	)
	c.fs.StringVar(&req.Template, "template", "", "template to start from (default base)")
	c.fs.IntVar(&req.VCPUs, "vcpus", 0, "virtual CPUs (default 1)")
	c.fs.IntVar(&req.MemoryMB, "memory", 0, "memory in MiB (default 512)")
	c.fs.IntVar(&req.DiskMB, "disk", 0, "writable disk in MiB (default: the host's)")
	c.fs.DurationVar(&timeout, "timeout", 0, "destroy the capsule after this long, e.g. 30m (default 5m)")
	c.fs.Var(env, "env", "environment variable `KEY=VALUE` of the capsule's processes (repeatable)")
	c.fs.Var(metadata, "metadata", "metadata `KEY=VALUE` to find the capsule by (repeatable)")
	c.fs.BoolVar(&noInternet, "no-internet", false, "block outbound traffic except --allow-out")
	c.fs.Var(&allowOut, "allow-out", "allow outbound traffic to this IPv4 `CIDR` (repeatable; wins over --deny-out)")
	c.fs.Var(&denyOut, "deny-out", "deny outbound traffic to this IPv4 `CIDR` (repeatable)")
	c.fs.BoolVar(&privatePorts, "private-ports", false, "require the capsule's traffic access token (see --json) on requests to its ports that carry no API key")
	c.fs.BoolVar(&noWait, "no-wait", false, "print the ID at once, while the capsule starts")
	c.fs.BoolVar(&jsonOut, "json", false, "print the capsule as JSON")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	if timeout < 0 {
		return c.usageError("--timeout must be positive")
	}
	req.TimeoutSeconds = int((timeout + time.Second - 1) / time.Second)
	if len(env) > 0 {
		req.EnvVars = env
	}
	if len(metadata) > 0 {
		req.Metadata = metadata
	}
	if noInternet {
		req.Internet = new(bool)
	}
	if privatePorts {
		req.PublicTraffic = new(bool)
	}
	req.AllowOut, req.DenyOut = allowOut, denyOut
	client, err := c.client()
	if err != nil {
		return err
	}

	start := time.Now()
	h, err := client.Create(ctx, req, nestbox.NoWait())
	if err != nil {
		return err
	}
	var cp nestbox.Capsule
	switch {
	case noWait && !jsonOut:
		cp.ID = h.ID()
	case noWait:
		if cp, err = h.Info(ctx); err != nil {
			return err
		}
	default:
		if cp, err = waitRunning(ctx, h, stdio, start); err != nil {
			return err
		}
	}
	if jsonOut {
		return printJSON(stdio.Stdout, cp)
	}
	_, err = fmt.Fprintln(stdio.Stdout, cp.ID)
	return err
}

// waitRunning waits for a new capsule, showing progress on a terminal.
func waitRunning(ctx context.Context, h *nestbox.Handle, stdio IO, start time.Time) (nestbox.Capsule, error) {
	if stdio.StderrIsTerminal {
		fmt.Fprintf(stdio.Stderr, "waiting for capsule %s to start... ", h.ID())
	}
	cp, err := h.Wait(ctx, nestbox.StatusRunning)
	if stdio.StderrIsTerminal {
		if err == nil {
			fmt.Fprintf(stdio.Stderr, "running (%.1fs)\n", time.Since(start).Seconds())
		} else {
			fmt.Fprintln(stdio.Stderr)
		}
	}
	var ce *nestbox.CapsuleError
	if err != nil && !errors.As(err, &ce) {
		// Say which capsule exists now, so that the user can find it.
		err = fmt.Errorf("capsule %s created, but waiting for it failed: %w", h.ID(), err)
	}
	return cp, err
}
