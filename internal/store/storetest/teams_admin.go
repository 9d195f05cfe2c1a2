package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// adminTeamFixture makes team t1 owned by u1 with member u2, two API keys,
// a session of each user acting for it, a pending invitation, and a second
// team t2 of u2's with a key and a session, which the tests check are
// left alone.
func adminTeamFixture(t *testing.T, s store.Store) {
	t.Helper()
	ctx := t.Context()
	for _, u := range []string{"u1", "u2"} {
		if err := s.CreateUser(ctx, store.User{ID: u, Email: u + "@example.com", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tm := range []struct{ id, owner string }{{"t1", "u1"}, {"t2", "u2"}} {
		if err := s.CreateTeam(ctx, store.Team{ID: tm.id, Name: tm.id, CreatedAt: t0}, tm.owner); err != nil {
			t.Fatal(err)
		}
	}
	inv := store.Invitation{ID: "inv_u2", TeamID: "t1", Email: "u2@example.com", Role: store.RoleMember, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateInvitation(ctx, inv, 10, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcceptInvitation(ctx, "inv_u2", "u2", t0, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateInvitation(ctx, store.Invitation{ID: "inv_pending", TeamID: "t1", Email: "new@example.com", Role: store.RoleMember,
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, 10, t0); err != nil {
		t.Fatal(err)
	}
	for i, k := range []struct{ id, team string }{{"k1", "t1"}, {"k2", "t1"}, {"k3", "t2"}} {
		if err := s.CreateAPIKey(ctx, store.APIKey{ID: k.id, TeamID: k.team, Name: k.id, Prefix: "nbx_" + k.id, Hash: fmt.Sprintf("hash-%d", i), CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sess := range []store.Session{
		{ID: "s1", UserID: "u1", TeamID: "t1", TokenHash: "th1", RefreshHash: "rh1"},
		{ID: "s2", UserID: "u2", TeamID: "t1", TokenHash: "th2", RefreshHash: "rh2"},
		{ID: "s3", UserID: "u2", TeamID: "t2", TokenHash: "th3", RefreshHash: "rh3"},
	} {
		sess.CreatedAt, sess.ExpiresAt, sess.RefreshExpiresAt = t0, t0.Add(24*time.Hour), t0.Add(48*time.Hour)
		if err := s.CreateSession(ctx, sess, 10); err != nil {
			t.Fatal(err)
		}
	}
}

func testTeamBYOC(t *testing.T, s store.Store) {
	ctx := t.Context()
	adminTeamFixture(t, s)
	for _, step := range []struct {
		byoc, changed bool
	}{{true, true}, {true, false}, {false, true}, {false, false}, {true, true}} {
		changed, err := s.SetTeamBYOC(ctx, "t1", step.byoc)
		if err != nil || changed != step.changed {
			t.Fatalf("SetTeamBYOC(t1, %v): changed %v, %v; want changed %v", step.byoc, changed, err, step.changed)
		}
		tm, err := s.GetTeam(ctx, "t1")
		if err != nil || tm.BYOC != step.byoc {
			t.Fatalf("GetTeam after SetTeamBYOC(%v): BYOC %v, %v", step.byoc, tm.BYOC, err)
		}
	}
	ts, err := s.ListTeams(ctx, "", 10)
	if err != nil || len(ts) != 2 || !ts[0].Team.BYOC || ts[1].Team.BYOC {
		t.Fatalf("ListTeams: %+v, %v; want t1 with BYOC, t2 without", ts, err)
	}
	if _, err := s.SetTeamBYOC(ctx, "nope", true); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("SetTeamBYOC of an unknown team: %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteTeam(ctx, "t2", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetTeamBYOC(ctx, "t2", true); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("SetTeamBYOC of a deleted team: %v, want ErrNotFound", err)
	}
}

func testDeleteTeam(t *testing.T, s store.Store) {
	ctx := t.Context()
	adminTeamFixture(t, s)
	at := t0.Add(time.Hour)
	d, err := s.DeleteTeam(ctx, "t1", at)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.TeamDeletion{Changed: true, KeysRevoked: 2, SessionsEnded: 2}); d != want {
		t.Errorf("DeleteTeam(t1): %+v, want %+v", d, want)
	}

	tm, err := s.GetTeam(ctx, "t1")
	if err != nil || tm.DeletedAt == nil || !tm.DeletedAt.Equal(at) {
		t.Errorf("GetTeam of the deleted team: %+v, %v; want it with DeletedAt %v", tm, err, at)
	}
	ts, err := s.ListTeams(ctx, "", 10)
	if err != nil || len(ts) != 2 || ts[0].Team.DeletedAt == nil || ts[0].OwnerID != "u1" || ts[1].Team.DeletedAt != nil {
		t.Errorf("ListTeams: %+v, %v; want t1 deleted (its owner still named), t2 not", ts, err)
	}
	// Nobody acts in it: no key, no session, no membership, no switch.
	for _, k := range []string{"k1", "k2"} {
		if _, err := s.APIKeyByHash(ctx, map[string]string{"k1": "hash-0", "k2": "hash-1"}[k]); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("key %s of the deleted team: %v, want ErrNotFound", k, err)
		}
	}
	for _, h := range []string{"th1", "th2"} {
		if _, err := s.SessionByToken(ctx, h, t0); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("session %s acting for the deleted team: %v, want ErrNotFound", h, err)
		}
	}
	for _, u := range []string{"u1", "u2"} {
		if _, err := s.MemberRole(ctx, "t1", u); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("MemberRole(t1, %s) after the delete: %v, want ErrNotFound", u, err)
		}
		ms, err := s.TeamsOfUser(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Team.ID == "t1" {
				t.Errorf("TeamsOfUser(%s) lists the deleted team", u)
			}
		}
	}
	if err := s.SetSessionTeam(ctx, "u2", "s3", "t1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("switching a session to the deleted team: %v, want ErrNotFound", err)
	}
	if err := s.CreateSession(ctx, store.Session{ID: "s4", UserID: "u1", TeamID: "t1", TokenHash: "th4", RefreshHash: "rh4",
		CreatedAt: at, ExpiresAt: at.Add(time.Hour), RefreshExpiresAt: at.Add(time.Hour)}, 10); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a new session for the deleted team: %v, want ErrNotFound", err)
	}
	if _, err := s.GetInvitation(ctx, "inv_pending"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("the deleted team's pending invitation: %v, want ErrNotFound", err)
	}
	// The other team keeps everything.
	if _, err := s.APIKeyByHash(ctx, "hash-2"); err != nil {
		t.Errorf("the other team's key: %v", err)
	}
	if _, err := s.SessionByToken(ctx, "th3", t0); err != nil {
		t.Errorf("the other team's session: %v", err)
	}
	if r, err := s.MemberRole(ctx, "t2", "u2"); err != nil || r != store.RoleOwner {
		t.Errorf("MemberRole(t2, u2): %q, %v", r, err)
	}

	// Again: nothing changes, no error, the first time kept.
	d, err = s.DeleteTeam(ctx, "t1", at.Add(time.Hour))
	if err != nil || d != (store.TeamDeletion{}) {
		t.Errorf("DeleteTeam(t1) again: %+v, %v; want no change", d, err)
	}
	if tm, _ := s.GetTeam(ctx, "t1"); tm.DeletedAt == nil || !tm.DeletedAt.Equal(at) {
		t.Errorf("DeletedAt after a second delete: %v, want %v", tm.DeletedAt, at)
	}
	if _, err := s.DeleteTeam(ctx, "nope", at); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("DeleteTeam of an unknown team: %v, want ErrNotFound", err)
	}
}

// testDeleteTeamRace: of concurrent deletes of one team, exactly one
// changes it.
func testDeleteTeamRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	adminTeamFixture(t, s)
	const n = 8
	var wg sync.WaitGroup
	results := make([]store.TeamDeletion, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { results[i], errs[i] = s.DeleteTeam(ctx, "t1", t0) })
	}
	wg.Wait()
	changed, keys := 0, 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("delete %d: %v", i, errs[i])
		}
		if results[i].Changed {
			changed++
		}
		keys += results[i].KeysRevoked
	}
	if changed != 1 || keys != 2 {
		t.Errorf("%d concurrent deletes: %d changed the team, %d keys revoked in all; want 1 and 2", n, changed, keys)
	}
}
