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
	c := newCommand(stdio, "capsule create", "[flags]", "Create a capsule, wait until it runs and print its ID. Stderr says what it got: template,\n"+
		"vCPUs, memory, disk (defaults resolved) and when it will be destroyed.")
	var (
		req             nestbox.CreateCapsuleRequest
		vcpus           countFlag
		memory, disk    mibFlag
		timeout         timeoutFlag
		env             = pairsFlag{}
		metadata        = pairsFlag{}
		allowOut        listFlag
		denyOut         listFlag
		noInternet      bool
		privatePorts    bool
		noWait, jsonOut bool
	)
	c.fs.StringVar(&req.Template, "template", "", "template to start from (default base)")
	c.fs.Var(&vcpus, "vcpus", "virtual `CPUs`, at most the host's cores (default 1)")
	c.fs.Var(&memory, "memory", "memory `size`: MiB, or with Mi, Gi (e.g. 512, 2Gi) (default 512 MiB)")
	c.fs.Var(&disk, "disk", "writable disk `size`: MiB, or with Mi, Gi, Ti (default: the host's, 5Gi unless its operator set another)")
	c.fs.Var(&timeout, "timeout", "destroy the capsule after this `duration`, e.g. 90s, 30m (default 5m; 0 is refused)")
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
	req.VCPUs, req.MemoryMB, req.DiskMB = int(vcpus), int(memory), int(disk)
	req.TimeoutSeconds = timeout.seconds()
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
	client, err := c.client(ctx)
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
	if !noWait {
		// What the server made of the request, defaults resolved: the ID
		// alone goes to stdout, for scripts.
		fmt.Fprintf(stdio.Stderr, "capsule %s: %s, %s, %s\n", cp.ID, cp.Template, resources(cp), lifetime(cp, time.Now()))
	}
	_, err = fmt.Fprintln(stdio.Stdout, cp.ID)
	return err
}

// resources says what a capsule was given, e.g. "1 vCPU, 512.0 MiB
// memory, 5.0 GiB disk": sizes as `capsule metrics` prints its totals,
// which are the same numbers.
func resources(cp nestbox.Capsule) string {
	disk := "the host's default disk (set when it starts)"
	if cp.DiskMB > 0 {
		disk = bytesIEC(uint64(cp.DiskMB)<<20) + " disk"
	}
	cpus := "vCPUs"
	if cp.VCPUs == 1 {
		cpus = "vCPU"
	}
	return fmt.Sprintf("%d %s, %s memory, %s", cp.VCPUs, cpus, bytesIEC(uint64(max(cp.MemoryMB, 0))<<20), disk)
}

// lifetime says when a capsule ends, e.g. "destroyed at 10:23:53 (in 5m)".
func lifetime(cp nestbox.Capsule, now time.Time) string {
	if cp.ExpiresAt == nil || cp.ExpiresAt.IsZero() {
		return "no end of life reported"
	}
	return fmt.Sprintf("destroyed at %s (in %s)", cp.ExpiresAt.Local().Format(time.TimeOnly), cp.ExpiresAt.Sub(now).Round(time.Second))
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
