package cli

import (
	"context"
	"time"

	"nestbox.dev"
)

// capsuleLogs is `nestbox capsule logs`: the capsule's status history.
func capsuleLogs(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "capsule logs", "[flags] ID", "Show a capsule's status history.")
	jsonOut := c.fs.Bool("json", false, "print {\"events\": [...]} as JSON")
	pos, err := c.parse(args, 1, 1)
	if err != nil {
		return err
	}
	client, err := c.client()
	if err != nil {
		return err
	}
	events, err := client.Capsule(pos[0]).Events(ctx)
	if err != nil {
		return err
	}
	if *jsonOut {
		if events == nil {
			events = []nestbox.CapsuleEvent{}
		}
		return printJSON(stdio.Stdout, nestbox.CapsuleEventList{Events: events})
	}
	t := newTable(stdio.Stdout, "TIME", "FROM", "TO", "REASON")
	for _, e := range events {
		t.row(e.At.Local().Format(time.DateTime), string(e.From), string(e.To), e.Reason)
	}
	return t.flush()
}
