package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// account creates an unverified active account.
func account(t *testing.T, s store.Store, id string) store.User {
	t.Helper()
	u := store.User{ID: id, Email: id + "@example.com", Name: id, CreatedAt: t0}
	a := store.Account{UserID: id, PasswordHash: "hash-" + id, Status: store.AccountActive, CreatedAt: t0}
	if err := s.CreateAccount(t.Context(), u, a); err != nil {
		t.Fatalf("CreateAccount(%s): %v", id, err)
	}
	return u
}

func testAccounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := account(t, s, "ada")
	if err := s.CreateAccount(ctx, store.User{ID: "ada2", Email: u.Email, CreatedAt: t0},
		store.Account{UserID: "ada2", PasswordHash: "h", Status: store.AccountActive, CreatedAt: t0}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("CreateAccount with a taken email: %v, want already exists", err)
	}
	if _, err := s.GetUser(ctx, "ada2"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a refused account left its user behind: %v", err)
	}
	gu, ga, err := s.AccountByEmail(ctx, u.Email)
	if err != nil || gu.ID != "ada" || ga.PasswordHash != "hash-ada" || ga.Status != store.AccountActive || ga.VerifiedAt != nil || !ga.CreatedAt.Equal(t0) {
		t.Errorf("AccountByEmail = %+v %+v, %v", gu, ga, err)
	}
	if _, _, err := s.AccountByEmail(ctx, "nobody@example.com"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("AccountByEmail(unknown): %v, want not found", err)
	}
	// A user without an account (the bootstrap admin) has none.
	if err := s.CreateUser(ctx, store.User{ID: "boot", Email: "boot@localhost", Admin: true, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GetAccount(ctx, "boot"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("GetAccount(user without account): %v, want not found", err)
	}

	// The first activation makes an admin, the next does not.
	admin, err := s.ActivateAccount(ctx, "ada", store.Team{ID: "t_ada", Name: "Ada", CreatedAt: at(1)}, at(1))
	if err != nil || !admin {
		t.Fatalf("first ActivateAccount = %v, %v; want admin", admin, err)
	}
	if _, err := s.ActivateAccount(ctx, "ada", store.Team{ID: "t_ada2", Name: "Ada", CreatedAt: at(1)}, at(1)); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("second ActivateAccount of one account: %v, want conflict", err)
	}
	if _, err := s.GetTeam(ctx, "t_ada2"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a refused activation left a team: %v", err)
	}
	gu, ga, _ = s.GetAccount(ctx, "ada")
	if !gu.Admin || ga.VerifiedAt == nil || !ga.VerifiedAt.Equal(at(1)) {
		t.Errorf("after activation: admin %v verified %v", gu.Admin, ga.VerifiedAt)
	}
	if ms, err := s.TeamsOfUser(ctx, "ada"); err != nil || len(ms) != 1 || ms[0].Team.ID != "t_ada" || ms[0].Role != store.RoleOwner {
		t.Errorf("TeamsOfUser after activation = %+v, %v", ms, err)
	}
	account(t, s, "bob")
	if admin, err := s.ActivateAccount(ctx, "bob", store.Team{ID: "t_bob", Name: "Bob", CreatedAt: at(2)}, at(2)); err != nil || admin {
		t.Errorf("second account's ActivateAccount = %v, %v; want no admin", admin, err)
	}

	// Status: compare-and-set, deletion time kept and cleared.
	if err := s.SetAccountStatus(ctx, "bob", store.AccountDisabled, store.AccountActive, at(3)); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("SetAccountStatus from the wrong status: %v, want conflict", err)
	}
	if err := s.SetAccountStatus(ctx, "nobody", store.AccountActive, store.AccountDeleted, at(3)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("SetAccountStatus(unknown): %v, want not found", err)
	}
	session(t, s, "bob", "t_bob", "s_bob")
	if err := s.SetAccountStatus(ctx, "bob", store.AccountActive, store.AccountDeleted, at(3)); err != nil {
		t.Fatal(err)
	}
	if _, a, _ := s.GetAccount(ctx, "bob"); a.Status != store.AccountDeleted || a.DeletedAt == nil || !a.DeletedAt.Equal(at(3)) {
		t.Errorf("deleted account: %+v", a)
	}
	if _, err := s.SessionByToken(ctx, "tok-s_bob", at(0)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a deleted account's session: %v, want not found", err)
	}
	if ids, err := s.DeletedAccounts(ctx, at(4), 10); err != nil || len(ids) != 1 || ids[0] != "bob" {
		t.Errorf("DeletedAccounts(after) = %v, %v; want [bob]", ids, err)
	}
	if ids, err := s.DeletedAccounts(ctx, at(3), 10); err != nil || len(ids) != 0 {
		t.Errorf("DeletedAccounts(at the deletion) = %v, %v; want none", ids, err)
	}
	if err := s.PurgeUser(ctx, "bob", at(3)); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("PurgeUser within the grace: %v, want conflict", err)
	}
	// Restored, then deleted again: the purge follows the new deletion.
	if err := s.SetAccountStatus(ctx, "bob", store.AccountDeleted, store.AccountActive, at(5)); err != nil {
		t.Fatal(err)
	}
	if _, a, _ := s.GetAccount(ctx, "bob"); a.Status != store.AccountActive || a.DeletedAt != nil {
		t.Errorf("restored account: %+v", a)
	}
	if err := s.PurgeUser(ctx, "bob", at(10)); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("PurgeUser of a restored account: %v, want conflict", err)
	}
	if err := s.SetAccountStatus(ctx, "bob", store.AccountActive, store.AccountDeleted, at(6)); err != nil {
		t.Fatal(err)
	}
	if err := s.PurgeUser(ctx, "bob", at(7)); err != nil {
		t.Fatalf("PurgeUser: %v", err)
	}
	if _, err := s.GetUser(ctx, "bob"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("purged user: %v, want not found", err)
	}
	if ms, _ := s.TeamsOfUser(ctx, "bob"); len(ms) != 0 {
		t.Errorf("purged user keeps memberships %v", ms)
	}
	if err := s.PurgeUser(ctx, "bob", at(7)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("PurgeUser twice: %v, want not found", err)
	}

	// A password change is a compare-and-set on the version and ends
	// every session.
	session(t, s, "ada", "t_ada", "s_ada")
	if err := s.SetPassword(ctx, "ada", "new", 1); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("SetPassword at a wrong version: %v, want conflict", err)
	}
	if err := s.SetPassword(ctx, "ada", "new", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword(ctx, "ada", "newer", 0); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("SetPassword twice from one version: %v, want conflict", err)
	}
	if _, a, _ := s.GetAccount(ctx, "ada"); a.PasswordHash != "new" || a.PasswordVersion != 1 {
		t.Errorf("after SetPassword: hash %q version %d", a.PasswordHash, a.PasswordVersion)
	}
	if _, err := s.SessionByToken(ctx, "tok-s_ada", at(0)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a session after a password change: %v, want not found", err)
	}
}

// session creates a session whose tokens hash to tok-ID and ref-ID,
// valid until at(30) (refresh until at(60)).
func session(t *testing.T, s store.Store, user, team, id string) store.Session {
	t.Helper()
	sess := store.Session{ID: id, UserID: user, TeamID: team, TokenHash: "tok-" + id, RefreshHash: "ref-" + id,
		ExpiresAt: at(30), RefreshExpiresAt: at(60), CreatedAt: t0}
	if err := s.CreateSession(t.Context(), sess, 10); err != nil {
		t.Fatalf("CreateSession(%s): %v", id, err)
	}
	return sess
}

// Concurrent activations on a fresh installation: exactly one admin.
func testFirstActivationRace(t *testing.T, s store.Store) {
	const n = 8
	for i := range n {
		account(t, s, fmt.Sprintf("u%d", i))
	}
	var wg sync.WaitGroup
	admins := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("u%d", i)
			admin, err := s.ActivateAccount(t.Context(), id, store.Team{ID: "t_" + id, Name: id, CreatedAt: t0}, t0)
			if err != nil {
				t.Errorf("ActivateAccount(%s): %v", id, err)
			}
			if admin {
				admins <- id
			}
		})
	}
	wg.Wait()
	close(admins)
	var got []string
	for id := range admins {
		got = append(got, id)
	}
	if len(got) != 1 {
		t.Errorf("%d activations made admins %v, want exactly one", n, got)
	}
}

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "ada", "t_ada")
	owner(t, s, "bob", "t_bob")
	want := session(t, s, "ada", "t_ada", "s1")
	got, err := s.SessionByToken(ctx, "tok-s1", at(29))
	if err != nil || got != want {
		t.Errorf("SessionByToken = %+v, %v; want %+v", got, err, want)
	}
	if _, err := s.SessionByToken(ctx, "tok-s1", at(30)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("SessionByToken at expiry: %v, want not found", err)
	}
	if _, err := s.SessionByToken(ctx, "ref-s1", at(0)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a refresh token as an access token: %v, want not found", err)
	}

	// Refresh rotates both tokens, once.
	next := store.Session{TokenHash: "tok-s1b", RefreshHash: "ref-s1b", ExpiresAt: at(70), RefreshExpiresAt: at(100)}
	got, err = s.RefreshSession(ctx, "ref-s1", at(59), next)
	if err != nil || got.ID != "s1" || got.UserID != "ada" || got.TeamID != "t_ada" || got.TokenHash != "tok-s1b" || !got.ExpiresAt.Equal(at(70)) || !got.CreatedAt.Equal(t0) {
		t.Errorf("RefreshSession = %+v, %v", got, err)
	}
	if _, err := s.RefreshSession(ctx, "ref-s1", at(59), store.Session{TokenHash: "x", RefreshHash: "y", ExpiresAt: at(70), RefreshExpiresAt: at(100)}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a refresh token used twice: %v, want not found", err)
	}
	if _, err := s.SessionByToken(ctx, "tok-s1", at(0)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("the access token before a refresh: %v, want not found", err)
	}
	if _, err := s.RefreshSession(ctx, "ref-s1b", at(100), store.Session{TokenHash: "x", RefreshHash: "y", ExpiresAt: at(110), RefreshExpiresAt: at(120)}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("an expired refresh token: %v, want not found", err)
	}

	// Another user cannot end it; its user can.
	if err := s.DeleteSession(ctx, "bob", "s1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("DeleteSession by another user: %v, want not found", err)
	}
	if err := s.DeleteSession(ctx, "ada", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionByToken(ctx, "tok-s1b", at(0)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a deleted session: %v, want not found", err)
	}

	// A user keeps at most max sessions: the oldest go.
	for i := range 5 {
		sess := store.Session{ID: fmt.Sprintf("m%d", i), UserID: "bob", TeamID: "t_bob", TokenHash: fmt.Sprintf("tok-m%d", i), RefreshHash: fmt.Sprintf("ref-m%d", i),
			ExpiresAt: at(30), RefreshExpiresAt: at(60), CreatedAt: at(i)}
		if err := s.CreateSession(ctx, sess, 3); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		_, err := s.SessionByToken(ctx, fmt.Sprintf("tok-m%d", i), at(0))
		if live := err == nil; live != (i >= 2) {
			t.Errorf("session m%d of 5 with max 3: live %v (%v)", i, live, err)
		}
	}
}

func testAdmins(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.CreateUser(ctx, store.User{ID: "root", Admin: true, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	owner(t, s, "ada", "t_ada")
	for _, tc := range []struct {
		user    string
		admin   bool
		changed bool
		kind    error
	}{
		{"root", false, false, errdefs.ErrConflict}, // the last admin
		{"ada", false, false, nil},                  // not an admin: no change
		{"ada", true, true, nil},
		{"ada", true, false, nil}, // already an admin
		{"nobody", true, false, errdefs.ErrNotFound},
		{"nobody", false, false, errdefs.ErrNotFound},
		{"root", false, true, nil},
		{"ada", false, false, errdefs.ErrConflict}, // now the last
	} {
		changed, err := s.SetAdmin(ctx, tc.user, tc.admin)
		if changed != tc.changed || (tc.kind == nil) != (err == nil) || (tc.kind != nil && !errors.Is(err, tc.kind)) {
			t.Errorf("SetAdmin(%s, %v) = %v, %v; want %v, %v", tc.user, tc.admin, changed, err, tc.changed, tc.kind)
		}
	}
}

// Many admins revoke one another at once: exactly one admin remains, and
// every refused revoke says conflict.
func testAdminRevokeRace(t *testing.T, s store.Store) {
	const n = 12
	for i := range n {
		if err := s.CreateUser(t.Context(), store.User{ID: fmt.Sprintf("a%02d", i), Admin: true, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 3 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		revoked := 0
		for i := range n {
			wg.Go(func() {
				changed, err := s.SetAdmin(t.Context(), fmt.Sprintf("a%02d", i), false)
				if err != nil && !errors.Is(err, errdefs.ErrConflict) {
					t.Errorf("SetAdmin(a%02d, false): %v", i, err)
				}
				if changed {
					mu.Lock()
					revoked++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		var admins []string
		for i := range n {
			u, err := s.GetUser(t.Context(), fmt.Sprintf("a%02d", i))
			if err != nil {
				t.Fatal(err)
			}
			if u.Admin {
				admins = append(admins, u.ID)
			}
		}
		if len(admins) != 1 || revoked != n-1 {
			t.Fatalf("round %d: %d concurrent revokes left admins %v (%d revoked), want exactly one", round, n, admins, revoked)
		}
		// Everyone an admin again for the next round.
		for i := range n {
			if _, err := s.SetAdmin(t.Context(), fmt.Sprintf("a%02d", i), true); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func testListUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.CreateUser(ctx, store.User{ID: "a_boot", Admin: true, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c", "b", "d"} {
		account(t, s, id)
	}
	if err := s.SetAccountStatus(ctx, "d", store.AccountActive, store.AccountDisabled, at(1)); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListUsers(ctx, "", 3)
	if err != nil || len(got) != 3 {
		t.Fatalf("ListUsers(first 3) = %+v, %v", got, err)
	}
	if got[0].User.ID != "a_boot" || !got[0].User.Admin || got[0].Account.UserID != "" {
		t.Errorf("a user without an account: %+v", got[0])
	}
	if got[1].User.ID != "b" || got[1].Account.UserID != "b" || got[1].Account.Status != store.AccountActive || !got[1].Account.CreatedAt.Equal(t0) {
		t.Errorf("an account: %+v", got[1])
	}
	for _, u := range got {
		if u.Account.PasswordHash != "" {
			t.Errorf("ListUsers returned %s's password hash", u.User.ID)
		}
	}
	rest, err := s.ListUsers(ctx, got[2].User.ID, 3)
	if err != nil || len(rest) != 1 || rest[0].User.ID != "d" || rest[0].Account.Status != store.AccountDisabled {
		t.Errorf("ListUsers(after %s) = %+v, %v", got[2].User.ID, rest, err)
	}

	// DeleteAPIKeysBy revokes the keys a user made, in every team.
	owner(t, s, "o", "t1")
	owner(t, s, "o2", "t2")
	for i, k := range []store.APIKey{
		{ID: "k1", TeamID: "t1", CreatedBy: "b"}, {ID: "k2", TeamID: "t2", CreatedBy: "b"}, {ID: "k3", TeamID: "t1", CreatedBy: "o"},
	} {
		k.Hash, k.CreatedAt = fmt.Sprintf("hash%d", i), t0
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.DeleteAPIKeysBy(ctx, "b"); err != nil || n != 2 {
		t.Errorf("DeleteAPIKeysBy(b) = %d, %v; want 2", n, err)
	}
	if ks, _ := s.ListAPIKeys(ctx, "t1"); len(ks) != 1 || ks[0].ID != "k3" {
		t.Errorf("keys of t1 after = %+v, want k3 alone", ks)
	}
}
