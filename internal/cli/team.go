package cli

import (
	"context"
	"errors"

	"nestbox.dev"
)

var teamVerbs = []verb{
	{"ls", "list your teams and your role in each", teamList},
	{"switch", "make your session act for another of your teams", teamSwitch},
	{"invite", "mail an invitation to join a team", teamInvite},
	{"members", "list a team's members", teamMembers},
}

// Team runs `nestbox team <verb> ...`.
func Team(ctx context.Context, args []string, stdio IO) error {
	return dispatch(ctx, "team", teamVerbs, args, stdio)
}

// teamOrSession is the team a verb acts on: --team, else the team the
// session of `account login` acts for (not with an API key, whose team
// the CLI does not know).
func (c *command) teamOrSession(flagTeam string) (string, error) {
	if flagTeam != "" {
		return flagTeam, nil
	}
	if firstOf(c.key, c.stdio.APIKey, c.stdio.getenv(nestbox.EnvAPIKey)) != "" {
		return "", errors.New("no team: with an API key, pass --team ID")
	}
	s, ok, err := loadSession(c.stdio)
	if err != nil {
		return "", err
	}
	if !ok || s.TeamID == "" {
		return "", errors.New("no team: pass --team ID, or log in with `nestbox account login`")
	}
	return s.TeamID, nil
}
