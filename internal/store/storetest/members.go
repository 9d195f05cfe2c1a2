package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// join adds user to team through an invitation with role.
func join(t *testing.T, s store.Store, team, user string, role store.Role) {
	t.Helper()
	id := "inv_" + team + "_" + user
	inv := store.Invitation{ID: id, TeamID: team, Email: user + "@example.com", Role: role, CreatedAt: t0, ExpiresAt: at(60)}
	if err := s.CreateInvitation(t.Context(), inv, 100, t0); err != nil {
		t.Fatalf("CreateInvitation(%s): %v", id, err)
	}
	if _, err := s.AcceptInvitation(t.Context(), id, user, at(1), 0); err != nil {
		t.Fatalf("AcceptInvitation(%s): %v", id, err)
	}
}

func testMembers(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "olga", "t1")
	for _, u := range []string{"adam", "mia"} {
		if err := s.CreateUser(ctx, store.User{ID: u, Email: u + "@example.com", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	join(t, s, "t1", "adam", store.RoleAdmin)
	join(t, s, "t1", "mia", store.RoleMember)
	ms, err := s.Members(ctx, "t1")
	if err != nil || len(ms) != 3 || ms[0].User.ID != "olga" || ms[0].Role != store.RoleOwner ||
		ms[1].User.ID != "adam" || ms[1].Role != store.RoleAdmin || ms[2].User.ID != "mia" || ms[2].Role != store.RoleMember {
		t.Errorf("Members = %+v, %v", ms, err)
	}
	if r, err := s.MemberRole(ctx, "t1", "mia"); err != nil || r != store.RoleMember {
		t.Errorf("MemberRole(mia) = %q, %v", r, err)
	}
	if _, err := s.MemberRole(ctx, "t1", "nobody"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("MemberRole(non-member): %v, want not found", err)
	}
	for _, tc := range []struct {
		user string
		role store.Role
		kind error
	}{
		{"olga", store.RoleMember, errdefs.ErrConflict}, // the owner is never demoted
		{"mia", store.RoleOwner, errdefs.ErrInvalid},    // nor is anyone made owner
		{"mia", "root", errdefs.ErrInvalid},
		{"nobody", store.RoleAdmin, errdefs.ErrNotFound},
		{"mia", store.RoleAdmin, nil},
		{"mia", store.RoleMember, nil},
	} {
		if err := s.SetMemberRole(ctx, "t1", tc.user, tc.role); (tc.kind == nil) != (err == nil) || (tc.kind != nil && !errors.Is(err, tc.kind)) {
			t.Errorf("SetMemberRole(%s, %s) = %v, want %v", tc.user, tc.role, err, tc.kind)
		}
	}
	if err := s.RemoveMember(ctx, "t1", "olga"); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("RemoveMember(owner): %v, want conflict", err)
	}

	// A session switches only to a team of its user; removal ends the
	// sessions acting for the team.
	owner(t, s, "mia2", "t_mia")
	sess := session(t, s, "mia", "t1", "s_mia")
	if err := s.SetSessionTeam(ctx, "mia", sess.ID, "t_mia"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("SetSessionTeam to a team not the user's: %v, want not found", err)
	}
	if err := s.SetSessionTeam(ctx, "adam", sess.ID, "t1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("SetSessionTeam of another user's session: %v, want not found", err)
	}
	if err := s.RemoveMember(ctx, "t1", "mia"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionByToken(ctx, sess.TokenHash, t0); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a removed member's session in the team: %v, want not found", err)
	}
	if err := s.RemoveMember(ctx, "t1", "mia"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("RemoveMember twice: %v, want not found", err)
	}
	join(t, s, "t_mia", "adam", store.RoleMember)
	as := session(t, s, "adam", "t1", "s_adam")
	if err := s.SetSessionTeam(ctx, "adam", as.ID, "t_mia"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.SessionByToken(ctx, as.TokenHash, t0); err != nil || got.TeamID != "t_mia" {
		t.Errorf("after SetSessionTeam: %+v, %v", got, err)
	}

	// Settings.
	if p, err := s.TeamPolicy(ctx, "t1"); err != nil || p.MembersMintKeys {
		t.Errorf("default TeamPolicy = %+v, %v", p, err)
	}
	for _, want := range []bool{true, false, true} {
		if err := s.SetTeamPolicy(ctx, "t1", store.TeamPolicy{MembersMintKeys: want}); err != nil {
			t.Fatal(err)
		}
		if p, _ := s.TeamPolicy(ctx, "t1"); p.MembersMintKeys != want {
			t.Errorf("TeamPolicy after setting %v = %+v", want, p)
		}
	}
	if err := s.SetTeamPolicy(ctx, "nope", store.TeamPolicy{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("SetTeamPolicy(unknown): %v, want not found", err)
	}

	// Teams a user may own.
	for i := range 2 {
		if err := s.CreateOwnedTeam(ctx, store.Team{ID: fmt.Sprintf("o%d", i), CreatedAt: t0}, "adam", 2); err != nil {
			t.Fatalf("CreateOwnedTeam #%d: %v", i+1, err)
		}
	}
	if err := s.CreateOwnedTeam(ctx, store.Team{ID: "o2", CreatedAt: t0}, "adam", 2); !errors.Is(err, errdefs.ErrExhausted) {
		t.Errorf("CreateOwnedTeam past the limit: %v, want exhausted", err)
	}
	if _, err := s.GetTeam(ctx, "o2"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a refused team exists: %v", err)
	}
}

func testInvitations(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "olga", "t1")
	owner(t, s, "bob", "t2")
	inv := store.Invitation{ID: "i1", TeamID: "t1", Email: "bob@example.com", Role: store.RoleAdmin, InvitedBy: "olga", CreatedAt: t0, ExpiresAt: at(10)}
	if err := s.CreateInvitation(ctx, inv, 2, t0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetInvitation(ctx, "i1"); err != nil || got != inv {
		t.Errorf("GetInvitation = %+v, %v; want %+v", got, err, inv)
	}
	bad := inv
	bad.ID, bad.Role = "i_owner", store.RoleOwner
	if err := s.CreateInvitation(ctx, bad, 2, t0); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("an invitation to be owner: %v, want invalid", err)
	}
	short := store.Invitation{ID: "i2", TeamID: "t1", Email: "x@example.com", Role: store.RoleMember, CreatedAt: t0, ExpiresAt: at(5)}
	if err := s.CreateInvitation(ctx, short, 2, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateInvitation(ctx, store.Invitation{ID: "i3", TeamID: "t1", Email: "y@example.com", Role: store.RoleMember, CreatedAt: t0, ExpiresAt: at(10)}, 2, t0); !errors.Is(err, errdefs.ErrExhausted) {
		t.Errorf("an invitation past the pending limit: %v, want exhausted", err)
	}
	// Expired invitations no longer count, nor list.
	if invs, err := s.ListInvitations(ctx, "t1", at(6)); err != nil || len(invs) != 1 || invs[0].ID != "i1" {
		t.Errorf("ListInvitations after i2 expired = %+v, %v", invs, err)
	}
	if err := s.CreateInvitation(ctx, store.Invitation{ID: "i3", TeamID: "t1", Email: "y@example.com", Role: store.RoleMember, CreatedAt: at(6), ExpiresAt: at(20)}, 2, at(6)); err != nil {
		t.Errorf("an invitation once another expired: %v", err)
	}
	if _, err := s.AcceptInvitation(ctx, "i2", "bob", at(6), 0); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("accept an expired invitation: %v, want conflict", err)
	}
	got, err := s.AcceptInvitation(ctx, "i1", "bob", at(7), 0)
	if err != nil || got.AcceptedBy != "bob" || got.AcceptedAt == nil {
		t.Fatalf("AcceptInvitation = %+v, %v", got, err)
	}
	if r, _ := s.MemberRole(ctx, "t1", "bob"); r != store.RoleAdmin {
		t.Errorf("bob's role after accepting = %q, want admin", r)
	}
	if _, err := s.AcceptInvitation(ctx, "i1", "bob", at(7), 0); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("accept twice: %v, want conflict", err)
	}
	// Another invitation for a member: already exists, and nothing accepted.
	if err := s.DeleteInvitation(ctx, "t1", "i3"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateInvitation(ctx, store.Invitation{ID: "i4", TeamID: "t1", Email: "bob@example.com", Role: store.RoleMember, CreatedAt: at(7), ExpiresAt: at(20)}, 2, at(7)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcceptInvitation(ctx, "i4", "bob", at(8), 0); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("accept as a member already: %v, want already exists", err)
	}
	if got, _ := s.GetInvitation(ctx, "i4"); got.AcceptedAt != nil {
		t.Error("a refused accept marked the invitation accepted")
	}
	// The member limit.
	if _, err := s.AcceptInvitation(ctx, "i4", "olga", at(8), 2); err == nil {
		t.Error("the owner accepted an invitation to its own team")
	}
	if err := s.CreateUser(ctx, store.User{ID: "zoe", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcceptInvitation(ctx, "i4", "zoe", at(8), 2); !errors.Is(err, errdefs.ErrExhausted) {
		t.Errorf("accept into a full team: %v, want exhausted", err)
	}
	if err := s.DeleteInvitation(ctx, "t2", "i4"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("DeleteInvitation by another team: %v, want not found", err)
	}
}

// Concurrent invitations for one team: the pending limit holds, round
// after round (each with its own team).
func testInvitationRace(t *testing.T, s store.Store) {
	const rounds, n, limit = 5, 24, 5
	for r := range rounds {
		team := fmt.Sprintf("t%d", r)
		owner(t, s, fmt.Sprintf("o%d", r), team)
		var ok atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				inv := store.Invitation{ID: fmt.Sprintf("i%d_%d", r, i), TeamID: team, Email: fmt.Sprintf("u%d@example.com", i), Role: store.RoleMember, CreatedAt: t0, ExpiresAt: at(10)}
				err := s.CreateInvitation(t.Context(), inv, limit, t0)
				switch {
				case err == nil:
					ok.Add(1)
				case !errors.Is(err, errdefs.ErrExhausted):
					t.Errorf("CreateInvitation(%s): %v", inv.ID, err)
				}
			})
		}
		close(start)
		wg.Wait()
		invs, err := s.ListInvitations(t.Context(), team, t0)
		if err != nil || len(invs) != limit || ok.Load() != limit {
			t.Fatalf("round %d: %d concurrent invitations with a limit of %d: %d created, %d listed (%v)", r, n, limit, ok.Load(), len(invs), err)
		}
	}
}

// Concurrent team creations by one owner: its limit holds. Several rounds,
// each with its own owner: one round rarely interleaves enough to catch a
// count taken outside a lock.
func testOwnedTeamRace(t *testing.T, s store.Store) {
	const rounds, n, limit = 5, 24, 3
	for r := range rounds {
		user := fmt.Sprintf("u%d", r)
		if err := s.CreateUser(t.Context(), store.User{ID: user, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		var ok atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				err := s.CreateOwnedTeam(t.Context(), store.Team{ID: fmt.Sprintf("t%d_%d", r, i), CreatedAt: t0}, user, limit)
				switch {
				case err == nil:
					ok.Add(1)
				case !errors.Is(err, errdefs.ErrExhausted):
					t.Errorf("CreateOwnedTeam(t%d_%d): %v", r, i, err)
				}
			})
		}
		close(start)
		wg.Wait()
		ms, err := s.TeamsOfUser(t.Context(), user)
		if err != nil || len(ms) != limit || ok.Load() != limit {
			t.Fatalf("round %d: %d concurrent creations with a limit of %d: %d created, %d owned (%v)", r, n, limit, ok.Load(), len(ms), err)
		}
	}
}

func testListTeams(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "olga", "t2")
	owner(t, s, "bob", "t1")
	owner(t, s, "cy", "t3")
	join(t, s, "t2", "bob", store.RoleMember)
	got, err := s.ListTeams(ctx, "", 2)
	if err != nil || len(got) != 2 || got[0].Team.ID != "t1" || got[0].OwnerID != "bob" || got[0].Members != 1 ||
		got[1].Team.ID != "t2" || got[1].OwnerID != "olga" || got[1].Members != 2 || !got[1].Team.CreatedAt.Equal(t0) {
		t.Errorf("ListTeams(first 2) = %+v, %v", got, err)
	}
	if rest, err := s.ListTeams(ctx, "t2", 2); err != nil || len(rest) != 1 || rest[0].Team.ID != "t3" {
		t.Errorf("ListTeams(after t2) = %+v, %v", rest, err)
	}
}

func testTransferOwnership(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "olga", "t1")
	for _, u := range []string{"mia", "zed"} {
		if err := s.CreateUser(ctx, store.User{ID: u, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	join(t, s, "t1", "mia", store.RoleMember)
	for _, tc := range []struct {
		from, to string
		kind     error
	}{
		{"mia", "olga", errdefs.ErrConflict}, // mia is not the owner
		{"olga", "zed", errdefs.ErrNotFound}, // zed is not a member
		{"olga", "olga", errdefs.ErrInvalid},
	} {
		if err := s.TransferOwnership(ctx, "t1", tc.from, tc.to); !errors.Is(err, tc.kind) {
			t.Errorf("TransferOwnership(%s to %s) = %v, want %v", tc.from, tc.to, err, tc.kind)
		}
	}
	if r, _ := s.MemberRole(ctx, "t1", "olga"); r != store.RoleOwner {
		t.Errorf("a refused transfer changed the owner's role to %q", r)
	}
	if err := s.TransferOwnership(ctx, "t1", "olga", "mia"); err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]store.Role{"olga": store.RoleAdmin, "mia": store.RoleOwner} {
		if r, _ := s.MemberRole(ctx, "t1", user); r != want {
			t.Errorf("after the transfer %s is %q, want %q", user, r, want)
		}
	}
	if err := s.RemoveMember(ctx, "t1", "olga"); err != nil {
		t.Errorf("the former owner cannot be removed: %v", err)
	}
}
