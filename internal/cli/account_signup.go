package cli

import (
	"context"
	"fmt"

	"nestbox.dev"
)

// accountSignUp is `nestbox account signup`.
func accountSignUp(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "account signup", "--email EMAIL [--name NAME] < password",
		"Create an account. The password is read from the first line of standard input.\n"+
			"The control plane mails a verification link to EMAIL; follow it, then log in\n"+
			"with `nestbox account login`.")
	email := c.fs.String("email", "", "the account's email (required)")
	name := c.fs.String("name", "", "your name, shown to your teams")
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
	if err := pub.SignUp(ctx, nestbox.SignUpRequest{Email: *email, Password: password, Name: *name}); err != nil {
		return err
	}
	fmt.Fprintf(stdio.Stdout, "Check %s for the verification link; once it is followed, log in with:\n  nestbox account login --email %s\n", *email, *email)
	return nil
}
