package cli

import (
	"strings"
	"testing"
)

// TestTeamVerbs: ls marks the session's team, switch moves the session
// (and the saved file) to another team, members and invite default to the
// session's team and take --team, and an API key needs --team.
func TestTeamVerbs(t *testing.T) {
	f := newFakeAccounts(t)
	if res := f.run(t, Team, "", nil, "members"); res.err == nil || !strings.Contains(res.err.Error(), "--team") {
		t.Errorf("members without a session or --team: %v", res.err)
	}
	if res := f.run(t, Account, "secret pw\n", nil, "login", "--email", "ada@example.com"); res.err != nil {
		t.Fatal(res.err)
	}
	res := f.run(t, Team, "", nil, "ls")
	if res.err != nil {
		t.Fatal(res.err)
	}
	lines := strings.Split(res.stdout, "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[1], adaTeam) || !strings.HasSuffix(lines[1], "yes") || strings.HasSuffix(lines[2], "yes") {
		t.Errorf("team ls, the session's team marked:\n%s", res.stdout)
	}

	if res := f.run(t, Team, "", nil, "switch", "team_nope"); res.err == nil || !strings.Contains(res.err.Error(), "not_found") {
		t.Errorf("switch to a team one is not in: %v", res.err)
	}
	if res := f.run(t, Team, "", nil, "switch", otherTeam); res.err != nil || f.team != otherTeam {
		t.Fatalf("switch: %v; server's team %s", res.err, f.team)
	}
	if lines := strings.Split(f.run(t, Team, "", nil, "ls").stdout, "\n"); len(lines) < 3 || strings.HasSuffix(lines[1], "yes") || !strings.HasSuffix(lines[2], "yes") {
		t.Errorf("team ls after the switch: %q", lines)
	}
	if res := f.run(t, Team, "", map[string]string{"NESTBOX_API_KEY": fakeKey}, "switch", adaTeam); res.err == nil {
		t.Error("switch with an API key succeeded")
	}

	res = f.run(t, Team, "", nil, "members")
	if res.err != nil || !strings.Contains(res.stdout, "bob@example.com") || !strings.Contains(res.stdout, "owner") {
		t.Errorf("members: %v\n%s", res.err, res.stdout)
	}
	if res := f.run(t, Team, "", nil, "invite", "carol@example.com", "--role", "admin", "--team", adaTeam); res.err != nil || !strings.Contains(res.stdout, "inv_1") {
		t.Errorf("invite: %v\n%s", res.err, res.stdout)
	}
	if res := f.run(t, Team, "", nil, "invite", "dan@example.com", "--role", "owner"); res.err == nil {
		t.Error("invite with role owner succeeded")
	}
	if res := f.run(t, Team, "", map[string]string{"NESTBOX_API_KEY": fakeKey}, "members"); res.err == nil || !strings.Contains(res.err.Error(), "--team") {
		t.Errorf("members with an API key and no --team: %v", res.err)
	}
	want := []string{"/v1/teams/" + otherTeam + "/members", "/v1/teams/" + adaTeam + "/invitations carol@example.com admin"}
	if strings.Join(f.paths, "|") != strings.Join(want, "|") {
		t.Errorf("the team routes got %q, want %q", f.paths, want)
	}
}
