package account_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"nestbox.dev/internal/account"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/mail"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlite"
)

// outbox is a Mailer that keeps what it is sent.
type outbox struct {
	mu   sync.Mutex
	msgs []mail.Message
	fail error
}

func (o *outbox) Send(_ context.Context, m mail.Message) error {
	if err := m.Check(); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return o.fail
	}
	o.msgs = append(o.msgs, m)
	return nil
}

// last returns the last mail to to, failing the test if there is none.
func (o *outbox) last(t *testing.T, to string) mail.Message {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.msgs) - 1; i >= 0; i-- {
		if o.msgs[i].To == to {
			return o.msgs[i]
		}
	}
	t.Fatalf("no mail to %s", to)
	return mail.Message{}
}

func (o *outbox) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.msgs)
}

// clock is a fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var linkKey = []byte("0123456789abcdef0123456789abcdef")

type env struct {
	svc   *account.Service
	store store.Store
	mail  *outbox
	clock *clock
}

func newEnv(t *testing.T, mod func(*account.Config)) *env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "nestbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{store: st, mail: &outbox{}, clock: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	cfg := account.Config{Store: st, Mailer: e.mail, LinkKey: linkKey, PublicURL: "https://nestbox.test", Now: e.clock.Now, BcryptCost: bcrypt.MinCost}
	if mod != nil {
		mod(&cfg)
	}
	e.svc, err = account.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var tokenRE = regexp.MustCompile(`token=([A-Za-z0-9_.%-]+)|"token": "([A-Za-z0-9_.-]+)"`)

// token is the link token in a mail's text.
func token(t *testing.T, m mail.Message) string {
	t.Helper()
	g := tokenRE.FindStringSubmatch(m.Text)
	if g == nil {
		t.Fatalf("mail %q has no token: %s", m.Subject, m.Text)
	}
	return g[1] + g[2]
}

// signUp signs up email and verifies it.
func (e *env) signUp(t *testing.T, email, password string) store.User {
	t.Helper()
	if err := e.svc.SignUp(t.Context(), email, password, "Name of "+email); err != nil {
		t.Fatalf("SignUp(%s): %v", email, err)
	}
	u, err := e.svc.Verify(t.Context(), token(t, e.mail.last(t, email)))
	if err != nil {
		t.Fatalf("Verify(%s): %v", email, err)
	}
	return u
}

func TestSignUpVerifyLogIn(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	if err := e.svc.SignUp(ctx, " Ada@Example.com ", "correct horse", "Ada"); err != nil {
		t.Fatal(err)
	}
	m := e.mail.last(t, "ada@example.com")
	if !strings.Contains(m.Text, "https://nestbox.test/v1/auth/verify?token=") || m.HTML == "" {
		t.Errorf("verification mail: %+v", m)
	}
	// Unverified: the right password is refused with permission.
	if _, err := e.svc.LogIn(ctx, "ada@example.com", "correct horse"); !errors.Is(err, errdefs.ErrPermission) {
		t.Errorf("LogIn before verifying: %v, want permission denied", err)
	}
	u, err := e.svc.Verify(ctx, token(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if !u.Admin || u.Email != "ada@example.com" {
		t.Errorf("first verified user = %+v, want the platform admin", u)
	}
	if _, err := e.svc.Verify(ctx, token(t, m)); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("Verify twice: %v, want conflict", err)
	}
	bob := e.signUp(t, "bob@example.com", "bob's password")
	if bob.Admin {
		t.Error("the second verified user became admin")
	}

	for _, tc := range []struct{ email, password string }{
		{"ada@example.com", "wrong password"},
		{"nobody@example.com", "correct horse"},
		{"not an email", "correct horse"},
	} {
		if _, err := e.svc.LogIn(ctx, tc.email, tc.password); !errors.Is(err, errdefs.ErrUnauthenticated) || err.Error() != "wrong email or password" {
			t.Errorf("LogIn(%q, %q): %v, want the one unauthenticated answer", tc.email, tc.password, err)
		}
	}
	tok, err := e.svc.LogIn(ctx, "ADA@example.com", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := e.svc.Authenticate(ctx, tok.AccessToken)
	if err != nil || sess.UserID != u.ID || sess.TeamID == "" {
		t.Fatalf("Authenticate = %+v, %v", sess, err)
	}
	if ms, _ := e.store.TeamsOfUser(ctx, u.ID); len(ms) != 1 || ms[0].Team.ID != sess.TeamID || ms[0].Role != store.RoleOwner {
		t.Errorf("the session's team %s is not the user's own: %+v", sess.TeamID, ms)
	}

	// Refresh rotates: the old pair stops working, the refresh token works once.
	next, err := e.svc.Refresh(ctx, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(ctx, tok.AccessToken); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("the access token after a refresh: %v, want unauthenticated", err)
	}
	if _, err := e.svc.Refresh(ctx, tok.RefreshToken); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("a refresh token used twice: %v, want unauthenticated", err)
	}
	// The access token expires; the refresh token outlives it.
	e.clock.Add(account.DefaultSessionTTL)
	if _, err := e.svc.Authenticate(ctx, next.AccessToken); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("an expired access token: %v, want unauthenticated", err)
	}
	last, err := e.svc.Refresh(ctx, next.RefreshToken)
	if err != nil {
		t.Fatalf("refresh after the access token expired: %v", err)
	}
	sess, err = e.svc.Authenticate(ctx, last.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.LogOut(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(ctx, last.AccessToken); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("after log-out: %v, want unauthenticated", err)
	}
	if _, err := e.svc.Refresh(ctx, last.RefreshToken); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("refresh after log-out: %v, want unauthenticated", err)
	}
}

// Sign-up answers alike for a new and a taken email.
func TestSignUpTaken(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	e.signUp(t, "ada@example.com", "correct horse")
	if err := e.svc.SignUp(ctx, "ada@example.com", "another password", ""); err != nil {
		t.Fatalf("SignUp of a taken email: %v, want the same answer as a new one", err)
	}
	if m := e.mail.last(t, "ada@example.com"); m.Subject != "Your Nestbox account" || strings.Contains(m.Text, "token") {
		t.Errorf("mail to a taken email: %+v", m)
	}
	if _, err := e.svc.LogIn(ctx, "ada@example.com", "another password"); err == nil {
		t.Error("a second sign-up changed the password")
	}
	// Unverified: a second sign-up takes over. A squatter signs up with
	// bob's email first; bob's own sign-up replaces the squatter's
	// password and voids the squatter's link.
	if err := e.svc.SignUp(ctx, "bob@example.com", "squatter password", ""); err != nil {
		t.Fatal(err)
	}
	squatterLink := token(t, e.mail.last(t, "bob@example.com"))
	if err := e.svc.SignUp(ctx, "bob@example.com", "bob password", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Verify(ctx, squatterLink); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Verify with the link of a replaced sign-up: %v, want invalid", err)
	}
	if _, err := e.svc.Verify(ctx, token(t, e.mail.last(t, "bob@example.com"))); err != nil {
		t.Errorf("Verify with the newest link: %v", err)
	}
	if _, err := e.svc.LogIn(ctx, "bob@example.com", "squatter password"); err == nil {
		t.Error("the squatter's password works after bob's own sign-up")
	}
	if _, err := e.svc.LogIn(ctx, "bob@example.com", "bob password"); err != nil {
		t.Errorf("bob's password: %v", err)
	}
	for _, tc := range []struct{ email, password, name string }{
		{"x", "long enough", ""},
		{"Ada <a@example.com>", "long enough", ""},
		{"c@example.com", "short", ""},
		{"c@example.com", strings.Repeat("p", 73), ""},
		{"c@example.com", "long enough", "two\nlines"},
	} {
		if err := e.svc.SignUp(ctx, tc.email, tc.password, tc.name); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("SignUp(%q, %d-byte password, %q): %v, want invalid", tc.email, len(tc.password), tc.name, err)
		}
	}
}

func TestPasswordReset(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	e.signUp(t, "ada@example.com", "old password")
	old, err := e.svc.LogIn(ctx, "ada@example.com", "old password")
	if err != nil {
		t.Fatal(err)
	}
	n := e.mail.count()
	if err := e.svc.RequestReset(ctx, "nobody@example.com"); err != nil || e.mail.count() != n {
		t.Errorf("RequestReset(unknown) = %v with %d mails, want nil and none", err, e.mail.count()-n)
	}
	if err := e.svc.RequestReset(ctx, "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	tok := token(t, e.mail.last(t, "ada@example.com"))
	if err := e.svc.ResetPassword(ctx, tok, "short"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("ResetPassword with a short password: %v, want invalid", err)
	}
	if err := e.svc.ResetPassword(ctx, tok, "new password"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ResetPassword(ctx, tok, "newer password"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("a reset link used twice: %v, want invalid", err)
	}
	if _, err := e.svc.Authenticate(ctx, old.AccessToken); err == nil {
		t.Error("a session survived the password reset")
	}
	if _, err := e.svc.LogIn(ctx, "ada@example.com", "old password"); err == nil {
		t.Error("the old password still works")
	}
	if _, err := e.svc.LogIn(ctx, "ada@example.com", "new password"); err != nil {
		t.Errorf("the new password: %v", err)
	}
	// A verification link is no reset link, and an expired one is refused.
	if err := e.svc.RequestReset(ctx, "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	tok = token(t, e.mail.last(t, "ada@example.com"))
	e.clock.Add(account.DefaultResetTTL)
	if err := e.svc.ResetPassword(ctx, tok, "newest password"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("an expired reset link: %v, want invalid", err)
	}
}

func TestDeleteRestorePurge(t *testing.T) {
	var purged []string
	e := newEnv(t, func(c *account.Config) {
		c.BeforePurge = func(_ context.Context, id string) error {
			purged = append(purged, id)
			if strings.HasPrefix(id, "usr_") && len(purged) == 1 {
				return errors.New("audit log down")
			}
			return nil
		}
	})
	ctx := t.Context()
	ada := e.signUp(t, "ada@example.com", "ada password")
	tok, err := e.svc.LogIn(ctx, "ada@example.com", "ada password")
	if err != nil {
		t.Fatal(err)
	}
	after, err := e.svc.Delete(ctx, ada.ID)
	if err != nil || !after.Equal(e.clock.Now().Add(account.DefaultGrace)) {
		t.Fatalf("Delete = %v, %v", after, err)
	}
	if _, err := e.svc.Authenticate(ctx, tok.AccessToken); err == nil {
		t.Error("a session survived the deletion")
	}
	if _, err := e.svc.LogIn(ctx, "ada@example.com", "ada password"); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("LogIn to a deleted account: %v, want unauthenticated", err)
	}
	if err := e.svc.Restore(ctx, ada.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.LogIn(ctx, "ada@example.com", "ada password"); err != nil {
		t.Errorf("LogIn after restore: %v", err)
	}
	if _, err := e.svc.Delete(ctx, ada.ID); err != nil {
		t.Fatal(err)
	}
	// Within the grace: nothing purged.
	e.clock.Add(account.DefaultGrace - time.Second)
	if n, err := e.svc.Purge(ctx); err != nil || n != 0 {
		t.Errorf("Purge within the grace = %d, %v; want 0", n, err)
	}
	e.clock.Add(2 * time.Second)
	// BeforePurge fails the first time: the user stays.
	if n, err := e.svc.Purge(ctx); err != nil || n != 0 {
		t.Errorf("Purge with BeforePurge failing = %d, %v; want 0", n, err)
	}
	if _, _, err := e.store.GetAccount(ctx, ada.ID); err != nil {
		t.Errorf("a user whose BeforePurge failed was purged: %v", err)
	}
	if n, err := e.svc.Purge(ctx); err != nil || n != 1 {
		t.Errorf("Purge = %d, %v; want 1", n, err)
	}
	if _, err := e.store.GetUser(ctx, ada.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("purged user: %v, want not found", err)
	}
	if m := e.mail.last(t, "ada@example.com"); m.Subject != "Your Nestbox account is deleted" {
		t.Errorf("last mail to the purged user: %q", m.Subject)
	}
	if len(purged) != 2 || purged[1] != ada.ID {
		t.Errorf("BeforePurge ran for %v, want %s twice", purged, ada.ID)
	}
	// The email is free again, and the new account is not admin: the
	// first activation is remembered.
	if u := e.signUp(t, "ada@example.com", "ada password"); u.Admin {
		t.Error("an account made after the first one was purged became admin")
	}
}

// A failed mail fails the sign-up with unavailable, so the user can retry.
func TestSignUpMailDown(t *testing.T) {
	e := newEnv(t, nil)
	e.mail.fail = errors.New("smtp down")
	if err := e.svc.SignUp(t.Context(), "ada@example.com", "long enough", ""); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("SignUp with the mailer down: %v, want unavailable", err)
	}
	e.mail.fail = nil
	if err := e.svc.SignUp(t.Context(), "ada@example.com", "long enough", ""); err != nil {
		t.Errorf("SignUp again: %v", err)
	}
	if _, err := e.svc.Verify(t.Context(), token(t, e.mail.last(t, "ada@example.com"))); err != nil {
		t.Errorf("Verify after a retried sign-up: %v", err)
	}
}

func TestDisableEnable(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	ada := e.signUp(t, "ada@example.com", "ada password")
	tok, err := e.svc.LogIn(ctx, "ada@example.com", "ada password")
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := e.store.TeamsOfUser(ctx, ada.ID)
	for i, by := range []string{ada.ID, ada.ID, ""} {
		k := store.APIKey{ID: fmt.Sprintf("k%d", i), TeamID: ms[0].Team.ID, Hash: fmt.Sprintf("h%d", i), CreatedBy: by, CreatedAt: e.clock.Now()}
		if err := e.store.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := e.svc.Disable(ctx, ada.ID); err != nil || n != 2 {
		t.Fatalf("Disable = %d, %v; want 2 keys revoked", n, err)
	}
	if _, err := e.svc.Authenticate(ctx, tok.AccessToken); err == nil {
		t.Error("a session survived Disable")
	}
	if _, err := e.svc.LogIn(ctx, "ada@example.com", "ada password"); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("LogIn while disabled: %v, want unauthenticated", err)
	}
	if n, err := e.svc.Disable(ctx, ada.ID); err != nil || n != 0 {
		t.Errorf("Disable again = %d, %v; want 0 and no error", n, err)
	}
	if _, err := e.svc.Delete(ctx, ada.ID); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("Delete while disabled: %v, want conflict", err)
	}
	if err := e.svc.Enable(ctx, ada.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.LogIn(ctx, "ada@example.com", "ada password"); err != nil {
		t.Errorf("LogIn after Enable: %v", err)
	}
	if err := e.svc.Enable(ctx, ada.ID); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("Enable an active account: %v, want conflict", err)
	}
	if ks, _ := e.store.ListAPIKeys(ctx, ms[0].Team.ID); len(ks) != 1 || ks[0].ID != "k2" {
		t.Errorf("keys after Disable and Enable = %+v, want k2 (made by nobody) alone", ks)
	}
}

func TestChangePassword(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	ada := e.signUp(t, "ada@example.com", "old password")
	tok, err := e.svc.LogIn(ctx, "ada@example.com", "old password")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ChangePassword(ctx, ada.ID, "wrong password", "new password"); !errors.Is(err, errdefs.ErrPermission) {
		t.Errorf("with a wrong current password: %v, want permission denied", err)
	}
	if err := e.svc.ChangePassword(ctx, ada.ID, "old password", "short"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("to a short password: %v, want invalid", err)
	}
	if err := e.svc.ChangePassword(ctx, ada.ID, "old password", "new password"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(ctx, tok.AccessToken); err == nil {
		t.Error("a session survived the password change")
	}
	if _, err := e.svc.LogIn(ctx, "ada@example.com", "old password"); err == nil {
		t.Error("the old password still works")
	}
	if _, err := e.svc.LogIn(ctx, "ada@example.com", "new password"); err != nil {
		t.Errorf("the new password: %v", err)
	}
}

// A purged owner's teams go to their first admin, else their first
// member; a team with no one else stays without an owner.
func TestPurgeHandsTeamsOver(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	olga := e.signUp(t, "olga@example.com", "olga password")
	for _, u := range []string{"b_member", "c_admin", "a_member"} {
		if err := e.store.CreateUser(ctx, store.User{ID: u, CreatedAt: e.clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	teams := []struct {
		id      string
		members map[string]store.Role
		want    string
	}{
		{"t_admin", map[string]store.Role{"b_member": store.RoleMember, "c_admin": store.RoleAdmin, "a_member": store.RoleMember}, "c_admin"},
		{"t_members", map[string]store.Role{"b_member": store.RoleMember, "a_member": store.RoleMember}, "a_member"},
		{"t_alone", nil, ""},
	}
	for _, tm := range teams {
		if err := e.store.CreateTeam(ctx, store.Team{ID: tm.id, Name: tm.id, CreatedAt: e.clock.Now()}, olga.ID); err != nil {
			t.Fatal(err)
		}
		for u, r := range tm.members {
			inv := store.Invitation{ID: "inv_" + tm.id + u, TeamID: tm.id, Email: u + "@example.com", Role: r, CreatedAt: e.clock.Now(), ExpiresAt: e.clock.Now().Add(time.Hour)}
			if err := e.store.CreateInvitation(ctx, inv, 10, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			if _, err := e.store.AcceptInvitation(ctx, inv.ID, u, e.clock.Now(), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := e.svc.Delete(ctx, olga.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(account.DefaultGrace + time.Second)
	if n, err := e.svc.Purge(ctx); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	for _, tm := range teams {
		ms, err := e.store.Members(ctx, tm.id)
		if err != nil {
			t.Fatal(err)
		}
		owner := ""
		for _, m := range ms {
			if m.Role == store.RoleOwner {
				owner = m.User.ID
			}
		}
		if owner != tm.want {
			t.Errorf("team %s after the purge: owner %q, want %q (%+v)", tm.id, owner, tm.want, ms)
		}
	}
}

// TestPurgeMailDown: a purge whose mail that the account is gone fails
// still purges every user, counts them, and logs the failure as a
// warning, once per user.
func TestPurgeMailDown(t *testing.T) {
	var logged bytes.Buffer
	e := newEnv(t, func(c *account.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	ctx := t.Context()
	var ids []string
	for _, email := range []string{"ada@example.com", "bob@example.com"} {
		u := e.signUp(t, email, "a password")
		if _, err := e.svc.Delete(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	e.clock.Add(account.DefaultGrace + time.Second)
	e.mail.fail = errors.New("smtp down")
	if n, err := e.svc.Purge(ctx); err != nil || n != 2 {
		t.Errorf("Purge with the mail down = %d, %v; want 2", n, err)
	}
	for _, id := range ids {
		if _, err := e.store.GetUser(ctx, id); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("user %s after the purge: %v, want not found", id, err)
		}
	}
	if got := strings.Count(logged.String(), `level=WARN msg="mail purged account"`); got != 2 {
		t.Errorf("%d warnings of the failed mail, want 2; log:\n%s", got, logged.String())
	}
}

// TestRunPurgesAtStart: the purge worker's first pass is at once, not a
// day after the start; it returns when its context is done.
func TestRunPurgesAtStart(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	u := e.signUp(t, "ada@example.com", "a password")
	if _, err := e.svc.Delete(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(account.DefaultGrace + time.Second)
	done := make(chan struct{})
	go func() { e.svc.Run(ctx); close(done) }()
	// Generous: the pass is one purge of one user; PurgeEvery is a day.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := e.store.GetUser(t.Context(), u.ID)
		if errors.Is(err, errdefs.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the user is still there 30 s after Run started (%v): no purge at start", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

// TestPurgeLease: a pass of Run purges only on the control plane that
// holds the purge's lease; while another holds it, nothing is purged
// here, and once it has run out this one purges.
func TestPurgeLease(t *testing.T) {
	e := newEnv(t, func(c *account.Config) { c.Holder = "cp-here" })
	ctx := t.Context()
	u := e.signUp(t, "ada@example.com", "a password")
	if _, err := e.svc.Delete(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(account.DefaultGrace + time.Second)
	now := e.clock.Now()
	if held, err := e.store.AcquireLease(ctx, "account-purge", "cp-other", now.Add(time.Hour), now); err != nil || !held {
		t.Fatalf("another control plane takes the lease: %v, %v", held, err)
	}
	if ran, err := e.svc.PurgeLeased(ctx); err != nil || ran {
		t.Fatalf("a pass while another holds the lease: ran %v, %v; want skipped", ran, err)
	}
	if _, err := e.store.GetUser(ctx, u.ID); err != nil {
		t.Fatalf("the user was purged by a control plane without the lease: %v", err)
	}
	e.clock.Add(time.Hour + time.Second)
	if ran, err := e.svc.PurgeLeased(ctx); err != nil || !ran {
		t.Fatalf("a pass once the other's lease ran out: ran %v, %v; want it run", ran, err)
	}
	if _, err := e.store.GetUser(ctx, u.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("the user after the pass that held the lease: %v, want not found", err)
	}
}
