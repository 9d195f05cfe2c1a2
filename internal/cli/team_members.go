package cli

import (
	"context"

	"nestbox.dev"
)

// teamMembers is `nestbox team members`.
func teamMembers(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "team members", "[--team ID] [flags]",
		"List a team's members and their roles, the owner first. The team is --team, else\n"+
			"the one your session acts for.")
	teamID := c.fs.String("team", "", "the team's `ID` (default: the session's team)")
	jsonOut := c.fs.Bool("json", false, "print {\"members\": [...]} as JSON")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	team, err := c.teamOrSession(*teamID)
	if err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	ms, err := client.Members(ctx, team)
	if err != nil {
		return err
	}
	if *jsonOut {
		if ms == nil {
			ms = []nestbox.Member{}
		}
		return printJSON(stdio.Stdout, struct {
			Members []nestbox.Member `json:"members"`
		}{ms})
	}
	t := newTable(stdio.Stdout, "USER", "EMAIL", "NAME", "ROLE")
	for _, m := range ms {
		t.row(m.UserID, m.Email, m.Name, m.Role)
	}
	return t.flush()
}
