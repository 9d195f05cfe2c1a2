package cli

import (
	"context"

	"nestbox.dev"
)

// showCapsule runs a verb that fetches one thing about capsule ID and prints
// it as JSON (--json) or for people: `capsule get`, `logs`, `metrics`.
// fetch returns what --json prints; human prints it otherwise.
func showCapsule[T any](ctx context.Context, args []string, stdio IO, name, summary, jsonHelp string,
	fetch func(ctx context.Context, h *nestbox.Handle) (T, error), human func(IO, T) error) error {
	c := newCommand(stdio, name, "[flags] ID", summary)
	jsonOut := c.fs.Bool("json", false, jsonHelp)
	pos, err := c.parse(args, 1, 1)
	if err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	v, err := fetch(ctx, client.Capsule(pos[0]))
	if err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdio.Stdout, v)
	}
	return human(stdio, v)
}
