package cli

import (
	"context"
)

// teamInvite is `nestbox team invite`.
func teamInvite(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "team invite", "EMAIL [--role admin|member] [--team ID]",
		"Mail EMAIL an invitation to join a team (owners and admins): the link in the mail\n"+
			"adds them once they accept it with their session. The team is --team, else the\n"+
			"one your session acts for.")
	role := c.fs.String("role", "member", "the role the invitation gives: admin or member")
	teamID := c.fs.String("team", "", "the team's `ID` (default: the session's team)")
	jsonOut := c.fs.Bool("json", false, "print the invitation as JSON")
	pos, err := c.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if *role != "admin" && *role != "member" {
		return c.usageError("--role must be admin or member")
	}
	team, err := c.teamOrSession(*teamID)
	if err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	inv, err := client.Invite(ctx, team, pos[0], *role)
	if err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdio.Stdout, inv)
	}
	t := newTable(stdio.Stdout, "Invitation:", inv.ID)
	t.row("Team:", inv.TeamID)
	t.row("Email:", inv.Email)
	t.row("Role:", inv.Role)
	t.row("Expires:", inv.ExpiresAt.Local().Format("2006-01-02 15:04"))
	return t.flush()
}
