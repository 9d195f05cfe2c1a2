package cli

import (
	"context"
	"fmt"

	"nestbox.dev"
)

// accountLogIn is `nestbox account login`.
func accountLogIn(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "account login", "--email EMAIL < password",
		"Log in. The password is read from the first line of standard input. The session\n"+
			"is saved in <data-dir>/session.json (readable by you only) and refreshed as it\n"+
			"expires: from then on the commands act as you, in your team, unless --api-key or\n"+
			"NESTBOX_API_KEY is given. `nestbox account logout` ends it.")
	email := c.fs.String("email", "", "the account's email (required)")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	if *email == "" {
		return c.usageError("--email is required")
	}
	password, err := readPassword(stdio)
	if err != nil {
		return err
	}
	pub, err := nestbox.NewPublic(nestbox.Config{URL: firstOf(c.url, stdio.URL, stdio.getenv(nestbox.EnvURL)), UserAgent: "nestbox-cli"})
	if err != nil {
		return err
	}
	t, err := pub.LogIn(ctx, *email, password)
	if err != nil {
		return err
	}
	if err := saveSession(stdio, savedSession{URL: pub.URL(), Email: *email, Tokens: t}); err != nil {
		return err
	}
	fmt.Fprintf(stdio.Stdout, "Logged in to %s as %s, acting for team %s.\n", pub.URL(), *email, t.TeamID)
	return nil
}
