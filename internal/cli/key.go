package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"nestbox.dev"
)

// keyCreate is `nestbox key create`: the only time a key's secret is shown.
func keyCreate(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "key create", "--name NAME [flags]",
		"Create an API key and print its secret, once, in both forms: nbx_... for Nestbox\n"+
			"and e2b_... (the same secret) for E2B's SDKs.")
	name := c.fs.String("name", "", "what the key is for (required)")
	jsonOut := c.fs.Bool("json", false, "print the key as JSON, secret included (key, e2b_key)")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	if *name == "" {
		return c.usageError("--name is required")
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	k, err := client.CreateKey(ctx, *name)
	if err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdio.Stdout, struct {
			nestbox.APIKeyCreated
			E2BKey string `json:"e2b_key,omitempty"`
		}{k, k.E2BKey()})
	}
	t := newTable(stdio.Stdout, "ID:", k.ID)
	t.row("Name:", k.Name)
	t.row("NESTBOX_API_KEY:", k.Key)
	if e2b := k.E2BKey(); e2b != "" {
		t.row("E2B_API_KEY:", e2b+"   (the same secret, for E2B's SDKs)")
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdio.Stderr, "The secret is shown only this once: store it now.")
	return nil
}

// keyList is `nestbox key ls`.
func keyList(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "key ls", "[flags]", "List the team's API keys (without their secrets).")
	jsonOut := c.fs.Bool("json", false, "print {\"keys\": [...]} as JSON")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	keys, err := client.Keys(ctx)
	if err != nil {
		return err
	}
	if *jsonOut {
		if keys == nil {
			keys = []nestbox.APIKey{}
		}
		return printJSON(stdio.Stdout, nestbox.APIKeyList{Keys: keys})
	}
	now := time.Now()
	t := newTable(stdio.Stdout, "ID", "NAME", "PREFIX", "CREATED", "LAST USED")
	for _, k := range keys {
		last := ""
		if k.LastUsedAt != nil {
			last = ago(*k.LastUsedAt, now)
		}
		t.row(k.ID, k.Name, k.Prefix+"...", ago(k.CreatedAt, now), last)
	}
	return t.flush()
}

// keyRemove is `nestbox key rm`.
func keyRemove(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "key rm", "[flags] ID...", "Revoke API keys.")
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
		if err := client.DeleteKey(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(stdio.Stdout, id)
	}
	return errors.Join(errs...)
}
