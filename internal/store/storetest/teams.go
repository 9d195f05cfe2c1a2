package storetest

import (
	"errors"
	"testing"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

func testUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := store.User{ID: "u1", Email: "ada@example.com", Name: "Ada", Admin: true, CreatedAt: t0}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	got, err := s.GetUser(ctx, "u1")
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if d := diff(got, u); d != "" {
		t.Errorf("GetUser: %s", d)
	}

	for _, tc := range []struct {
		name string
		u    store.User
	}{
		{"same ID", store.User{ID: "u1", Email: "other@example.com", CreatedAt: t0}},
		{"same email", store.User{ID: "u2", Email: "ada@example.com", CreatedAt: t0}},
	} {
		if err := s.CreateUser(ctx, tc.u); !errors.Is(err, errdefs.ErrAlreadyExists) {
			t.Errorf("CreateUser with the %s as another user: %v, want ErrAlreadyExists", tc.name, err)
		}
	}

	if _, err := s.GetUser(ctx, "nobody"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("GetUser(nobody): %v, want ErrNotFound", err)
	}
}

func testTeams(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, u := range []store.User{
		{ID: "u1", Email: "a@example.com", CreatedAt: t0},
		{ID: "u2", Email: "b@example.com", CreatedAt: t0},
	} {
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatalf("CreateUser(%s): %v", u.ID, err)
		}
	}
	// Created newest first, to see that TeamsOfUser sorts.
	newer := store.Team{ID: "t2", Name: "Newer", CreatedAt: at(10)}
	older := store.Team{ID: "t1", Name: "Older", CreatedAt: at(1)}
	for _, tm := range []store.Team{newer, older} {
		if err := s.CreateTeam(ctx, tm, "u1"); err != nil {
			t.Fatalf("CreateTeam(%s): %v", tm.ID, err)
		}
	}

	got, err := s.GetTeam(ctx, "t1")
	if err != nil {
		t.Fatalf("GetTeam: %v", err)
	}
	if d := diff(got, older); d != "" {
		t.Errorf("GetTeam: %s", d)
	}

	ms, err := s.TeamsOfUser(ctx, "u1")
	if err != nil {
		t.Fatalf("TeamsOfUser(u1): %v", err)
	}
	want := []store.Membership{{Team: older, Role: store.RoleOwner}, {Team: newer, Role: store.RoleOwner}}
	if d := diff(ms, want); d != "" {
		t.Errorf("TeamsOfUser(u1): %s", d)
	}
	if ms, err := s.TeamsOfUser(ctx, "u2"); err != nil || len(ms) != 0 {
		t.Errorf("TeamsOfUser(u2) = %v, %v; want no teams", ms, err)
	}

	if err := s.CreateTeam(ctx, store.Team{ID: "t1", CreatedAt: t0}, "u2"); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("CreateTeam with a taken ID: %v, want ErrAlreadyExists", err)
	}
	// The membership of a taken team ID must not have been added either.
	if ms, err := s.TeamsOfUser(ctx, "u2"); err != nil || len(ms) != 0 {
		t.Errorf("TeamsOfUser(u2) after a failed CreateTeam = %v, %v; want no teams", ms, err)
	}

	// An unknown owner fails the whole transaction: no ownerless team.
	if err := s.CreateTeam(ctx, store.Team{ID: "t3", CreatedAt: t0}, "nobody"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("CreateTeam with an unknown owner: %v, want ErrNotFound", err)
	}
	if _, err := s.GetTeam(ctx, "t3"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("GetTeam of a team whose owner was unknown: %v, want ErrNotFound", err)
	}
	if _, err := s.GetTeam(ctx, "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("GetTeam(nope): %v, want ErrNotFound", err)
	}
}
