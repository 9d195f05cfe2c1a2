package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"nestbox.dev"
)

var hostTokenVerbs = []verb{
	{"create", "make a join token and print its secret", hostTokenCreate},
	{"ls", "list usable join tokens", hostTokenList},
	{"rm", "revoke join tokens", hostTokenRemove},
}

// hostToken is `nestbox host token <verb>`.
func hostToken(ctx context.Context, args []string, stdio IO) error {
	return dispatch(ctx, "host token", hostTokenVerbs, args, stdio)
}

// hostTokenCreate is `nestbox host token create`.
func hostTokenCreate(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "host token create", "[flags]",
		"Make a join token: a host joins the fleet with\n"+
			"  nestbox agent --control-plane URL --join-token-file FILE\n"+
			"where FILE (mode 0600) holds the token. The secret is shown only once.")
	ttl := c.fs.Duration("ttl", 24*time.Hour, "how long the token is valid (1m to 720h)")
	uses := c.fs.Int("uses", 1, "how many hosts may join with it")
	jsonOut := c.fs.Bool("json", false, "print the token as JSON, secret included")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	t, err := client.CreateJoinToken(ctx, nestbox.CreateJoinTokenRequest{TTLSeconds: int(*ttl / time.Second), Uses: *uses})
	if err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdio.Stdout, t)
	}
	tb := newTable(stdio.Stdout, "ID:", t.ID)
	tb.row("Token:", t.Token)
	tb.row("Expires:", t.ExpiresAt.Local().Format(time.RFC3339))
	tb.row("Uses:", strconv.Itoa(t.UsesLeft))
	if err := tb.flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdio.Stderr, "The token is shown only this once: put it in a file (mode 0600) on the host.")
	return nil
}

// hostTokenList is `nestbox host token ls`.
func hostTokenList(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "host token ls", "[flags]", "List the join tokens that are usable (without their secrets).")
	jsonOut := c.fs.Bool("json", false, "print {\"tokens\": [...]} as JSON")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	ts, err := client.JoinTokens(ctx)
	if err != nil {
		return err
	}
	if *jsonOut {
		if ts == nil {
			ts = []nestbox.JoinToken{}
		}
		return printJSON(stdio.Stdout, nestbox.JoinTokenList{Tokens: ts})
	}
	now := time.Now()
	tb := newTable(stdio.Stdout, "ID", "CREATED", "EXPIRES", "USES LEFT")
	for _, t := range ts {
		tb.row(t.ID, ago(t.CreatedAt, now), until(&t.ExpiresAt, now), strconv.Itoa(t.UsesLeft))
	}
	return tb.flush()
}

// hostTokenRemove is `nestbox host token rm`.
func hostTokenRemove(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "host token rm", "[flags] ID...", "Revoke join tokens; hosts that joined with them stay.")
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
		if err := client.DeleteJoinToken(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(stdio.Stdout, id)
	}
	return errors.Join(errs...)
}
