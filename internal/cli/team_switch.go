package cli

import (
	"context"
	"errors"
	"fmt"

	"nestbox.dev"
)

// teamSwitch is `nestbox team switch`.
func teamSwitch(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "team switch", "TEAM_ID",
		"Make the session of `nestbox account login` act for another of your teams: the\n"+
			"commands after it create and see that team's capsules, keys and logs. An API\n"+
			"key always acts for its own team.")
	pos, err := c.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if firstOf(c.key, stdio.APIKey, stdio.getenv(nestbox.EnvAPIKey)) != "" {
		return errors.New("team switch: an API key acts for its own team; switching is for the session of `nestbox account login`")
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	s, ok, err := loadSession(stdio)
	if err != nil {
		return err
	}
	if !ok || !sameURL(s.URL, client.URL()) {
		return errors.New("team switch: not logged in: run `nestbox account login` first")
	}
	if err := client.SwitchTeam(ctx, pos[0]); err != nil {
		return err
	}
	s.TeamID = pos[0]
	if err := saveSession(stdio, s); err != nil {
		return err
	}
	fmt.Fprintf(stdio.Stdout, "Acting for team %s.\n", pos[0])
	return nil
}
