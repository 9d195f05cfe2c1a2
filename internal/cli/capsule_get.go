package cli

import (
	"context"
	"strings"
	"time"

	"nestbox.dev"
)

// capsuleGet is `nestbox capsule get`.
func capsuleGet(ctx context.Context, args []string, stdio IO) error {
	return showCapsule(ctx, args, stdio, "capsule get", "Show a capsule.", "print the capsule as JSON",
		func(ctx context.Context, h *nestbox.Handle) (nestbox.Capsule, error) { return h.Info(ctx) },
		func(stdio IO, cp nestbox.Capsule) error { return printCapsule(stdio, cp, time.Now()) })
}

func printCapsule(stdio IO, cp nestbox.Capsule, now time.Time) error {
	net := "yes"
	if !cp.Internet {
		net = "no"
	}
	if len(cp.AllowOut) > 0 {
		net += ", allow " + strings.Join(cp.AllowOut, " ")
	}
	if len(cp.DenyOut) > 0 {
		net += ", deny " + strings.Join(cp.DenyOut, " ")
	}
	t := newTable(stdio.Stdout, "ID:", cp.ID)
	t.row("Status:", string(cp.Status))
	if cp.Error != "" {
		t.row("Error:", cp.Error)
	}
	t.row("Template:", cp.Template)
	t.row("Resources:", resources(cp))
	t.row("Internet:", net)
	t.row("Metadata:", pairs(cp.Metadata))
	t.row("Created:", timestamp(&cp.CreatedAt, now))
	t.row("Started:", timestamp(cp.StartedAt, now))
	if cp.Status.Final() {
		t.row("Stopped:", timestamp(cp.StoppedAt, now))
	} else {
		t.row("Expires:", timestamp(cp.ExpiresAt, now))
	}
	t.row("Host:", cp.HostID)
	t.row("envd:", cp.EnvdVersion)
	return t.flush()
}
