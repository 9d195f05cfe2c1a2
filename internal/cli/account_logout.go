package cli

import (
	"context"
	"errors"
	"fmt"

	"nestbox.dev"
)

// accountLogOut is `nestbox account logout`.
func accountLogOut(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "account logout", "[flags]", "End the session of `nestbox account login` and forget it.")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	s, ok, err := loadSession(stdio)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("account logout: not logged in")
	}
	// The session is forgotten here even if the control plane cannot be
	// told: its access token then lapses on its own within minutes.
	var logoutErr error
	if client, err := nestbox.New(nestbox.Config{URL: s.URL, APIKey: s.AccessToken, UserAgent: "nestbox-cli"}); err != nil {
		logoutErr = err
	} else if err := client.LogOut(ctx); err != nil && !errors.Is(err, nestbox.ErrUnauthenticated) {
		logoutErr = err
	}
	if err := removeSession(stdio); err != nil {
		return err
	}
	if logoutErr != nil {
		return fmt.Errorf("account logout: the session is forgotten here, but the control plane was not told (%w); it expires on its own", logoutErr)
	}
	fmt.Fprintf(stdio.Stdout, "Logged out %s.\n", s.Email)
	return nil
}
