package cli

import (
	"context"
	"time"

	"nestbox.dev"
)

// capsuleLogs is `nestbox capsule logs`: the capsule's status history.
func capsuleLogs(ctx context.Context, args []string, stdio IO) error {
	return showCapsule(ctx, args, stdio, "capsule logs", "Show a capsule's status history.", "print {\"events\": [...]} as JSON",
		func(ctx context.Context, h *nestbox.Handle) (nestbox.CapsuleEventList, error) {
			events, err := h.Events(ctx)
			if events == nil {
				events = []nestbox.CapsuleEvent{}
			}
			return nestbox.CapsuleEventList{Events: events}, err
		},
		func(stdio IO, l nestbox.CapsuleEventList) error {
			t := newTable(stdio.Stdout, "TIME", "FROM", "TO", "REASON")
			for _, e := range l.Events {
				t.row(e.At.Local().Format(time.DateTime), string(e.From), string(e.To), e.Reason)
			}
			return t.flush()
		})
}
