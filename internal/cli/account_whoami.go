package cli

import (
	"context"
	"fmt"

	"nestbox.dev"
)

// accountWhoAmI is `nestbox account whoami`.
func accountWhoAmI(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "account whoami", "[flags]",
		"Show the control plane, who the commands act as (a session of `account login`, or\n"+
			"an API key and where it came from) and, for a session, its team and your role.")
	jsonOut := c.fs.Bool("json", false, "print {url, as, email, user_id, team_id, team_name, role, key} as JSON")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	var out struct {
		URL      string `json:"url"`
		As       string `json:"as"` // "session" or "api_key"
		Email    string `json:"email,omitempty"`
		UserID   string `json:"user_id,omitempty"`
		TeamID   string `json:"team_id,omitempty"`
		TeamName string `json:"team_name,omitempty"`
		Role     string `json:"role,omitempty"`
		// Key is an API key's display prefix, never its secret.
		Key string `json:"key,omitempty"`
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	out.URL = client.URL()
	flagKey := firstOf(c.key, stdio.APIKey, stdio.getenv(nestbox.EnvAPIKey))
	s, ok, err := loadSession(stdio)
	if err != nil {
		return err
	}
	if flagKey == "" && ok && sameURL(s.URL, out.URL) {
		out.As, out.Email, out.UserID, out.TeamID = "session", s.Email, s.UserID, s.TeamID
		teams, err := client.Teams(ctx)
		if err != nil {
			return err
		}
		for _, t := range teams {
			if t.ID == s.TeamID {
				out.TeamName, out.Role = t.Name, t.Role
			}
		}
	} else {
		key := flagKey
		if key == "" {
			_, key, _ = nestbox.LookupConnection(out.URL, "", stdio.getenv)
		}
		out.As, out.Key = "api_key", displayKey(key)
	}
	if *jsonOut {
		return printJSON(stdio.Stdout, out)
	}
	t := newTable(stdio.Stdout, "URL:", out.URL)
	if out.As == "session" {
		t.row("As:", fmt.Sprintf("%s (user %s, session of `account login`)", out.Email, out.UserID))
		t.row("Team:", fmt.Sprintf("%s %s (%s)", out.TeamID, out.TeamName, out.Role))
	} else {
		t.row("As:", "API key "+out.Key+" (the key's team)")
	}
	return t.flush()
}

// displayKey is the start of a credential, enough to tell keys apart and
// never enough to use one.
func displayKey(key string) string {
	if len(key) <= 8 {
		return "..."
	}
	return key[:8] + "..."
}

func sameURL(a, b string) bool {
	trim := func(s string) string {
		for len(s) > 0 && s[len(s)-1] == '/' {
			s = s[:len(s)-1]
		}
		return s
	}
	return trim(a) == trim(b)
}
