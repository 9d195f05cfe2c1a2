package cli

import (
	"context"

	"nestbox.dev"
)

// teamList is `nestbox team ls`.
func teamList(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "team ls", "[flags]",
		"List your teams (the session's user's, or the API key's maker's) and your role in\n"+
			"each; CURRENT marks the team the session of `account login` acts for.")
	jsonOut := c.fs.Bool("json", false, "print {\"teams\": [...]} as JSON")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	teams, err := client.Teams(ctx)
	if err != nil {
		return err
	}
	if *jsonOut {
		if teams == nil {
			teams = []nestbox.Team{}
		}
		return printJSON(stdio.Stdout, struct {
			Teams []nestbox.Team `json:"teams"`
		}{teams})
	}
	current := ""
	if s, ok, err := loadSession(stdio); err == nil && ok && sameURL(s.URL, client.URL()) && firstOf(c.key, stdio.APIKey, stdio.getenv(nestbox.EnvAPIKey)) == "" {
		current = s.TeamID
	}
	t := newTable(stdio.Stdout, "ID", "NAME", "ROLE", "CREATED", "CURRENT")
	for _, tm := range teams {
		mark := ""
		if tm.ID == current {
			mark = "yes"
		}
		t.row(tm.ID, tm.Name, tm.Role, tm.CreatedAt.Local().Format("2006-01-02 15:04"), mark)
	}
	return t.flush()
}
