package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"nestbox.dev"
)

var hostVerbs = []verb{
	{"ls", "list the fleet's hosts", hostList},
	{"get", "show a host", hostGet},
	{"cordon", "stop placing new capsules on hosts", hostAction("cordon")},
	{"uncordon", "place new capsules on hosts again", hostAction("uncordon")},
	{"drain", "place nothing new on hosts and let their capsules end", hostAction("drain")},
	{"rm", "forget hosts that have no live capsules", hostRemove},
	{"token", "create, list and revoke join tokens (`host token create|ls|rm`)", hostToken},
}

// Host runs `nestbox host <verb> ...` (platform admins only).
func Host(ctx context.Context, args []string, stdio IO) error {
	return dispatch(ctx, "host", hostVerbs, args, stdio)
}

// hostList is `nestbox host ls`.
func hostList(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "host ls", "[flags]", "List the fleet's hosts with their state and capacity.")
	jsonOut := c.fs.Bool("json", false, "print {\"hosts\": [...]} as JSON")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	hs, err := client.Hosts(ctx)
	if err != nil {
		return err
	}
	if *jsonOut {
		if hs == nil {
			hs = []nestbox.Host{}
		}
		return printJSON(stdio.Stdout, nestbox.HostList{Hosts: hs})
	}
	now := time.Now()
	t := newTable(stdio.Stdout, "ID", "NAME", "STATE", "REACHABLE", "CAPSULES", "CPUS", "MEMORY FREE", "LAST SEEN", "URL")
	for _, h := range hs {
		t.row(h.ID, h.Name, h.State, strconv.FormatBool(h.Reachable), strconv.Itoa(h.Capsules),
			strconv.Itoa(int(h.Capacity.CPUs)), mib(h.Capacity.MemoryAvailableBytes), ago(h.LastSeenAt, now), h.URL)
	}
	return t.flush()
}

func mib(b uint64) string { return fmt.Sprintf("%d MiB", b>>20) }

// hostGet is `nestbox host get`.
func hostGet(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "host get", "[flags] ID", "Show a host.")
	jsonOut := c.fs.Bool("json", false, "print the host as JSON")
	ids, err := c.parse(args, 1, 1)
	if err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	h, err := client.Host(ctx, ids[0])
	if err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdio.Stdout, h)
	}
	return printHost(stdio, h)
}

func printHost(stdio IO, h nestbox.Host) error {
	k := h.Capacity
	t := newTable(stdio.Stdout, "ID:", h.ID)
	t.row("Name:", h.Name)
	t.row("URL:", h.URL)
	t.row("State:", h.State)
	t.row("Reachable:", strconv.FormatBool(h.Reachable))
	t.row("Capsules:", fmt.Sprintf("%d (%d running, %d paused on the host)", h.Capsules, k.Running, k.Paused))
	t.row("CPUs:", strconv.Itoa(int(k.CPUs)))
	t.row("Memory:", fmt.Sprintf("%s free of %s, %s promised to capsules", mib(k.MemoryAvailableBytes), mib(k.MemoryTotalBytes), mib(k.MemoryAllocatedBytes)))
	t.row("Disk:", fmt.Sprintf("%s free of %s", mib(k.DiskAvailableBytes), mib(k.DiskTotalBytes)))
	t.row("Version:", k.Version+" ("+k.Driver+")")
	t.row("Last seen:", ago(h.LastSeenAt, time.Now()))
	return t.flush()
}

// hostAction is `nestbox host cordon|uncordon|drain`.
func hostAction(action string) func(ctx context.Context, args []string, stdio IO) error {
	help := map[string]string{
		"cordon":   "Stop placing new capsules on the hosts; their capsules run on.",
		"uncordon": "Place new capsules on the hosts again.",
		"drain": "Place no new capsules on the hosts and let theirs end by themselves (timeouts,\n" +
			"destroys): nothing is paused or moved. `nestbox host ls` shows how many remain;\n" +
			"remove the host with `nestbox host rm` once none do.",
	}[action]
	return func(ctx context.Context, args []string, stdio IO) error {
		c := newCommand(stdio, "host "+action, "[flags] ID...", help)
		ids, err := c.parse(args, 1, -1)
		if err != nil {
			return err
		}
		client, err := c.client(ctx)
		if err != nil {
			return err
		}
		var errs []error
		for _, id := range ids {
			h, err := client.SetHostState(ctx, id, action)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(stdio.Stdout, "%s\t%s\t%d capsules\n", h.ID, h.State, h.Capsules)
		}
		return errors.Join(errs...)
	}
}

// hostRemove is `nestbox host rm`.
func hostRemove(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "host rm", "[flags] ID...", "Forget hosts. A host with live capsules is refused: drain it first.")
	ids, err := c.parse(args, 1, -1)
	if err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if err := client.RemoveHost(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(stdio.Stdout, id)
	}
	return errors.Join(errs...)
}
