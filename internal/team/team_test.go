package team_test

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/mail"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlite"
	"nestbox.dev/internal/team"
)

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

var tokenRE = regexp.MustCompile(`"token": "([A-Za-z0-9_.-]+)"`)

func (o *outbox) token(t *testing.T, to string) string {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.msgs) - 1; i >= 0; i-- {
		if o.msgs[i].To == to {
			if g := tokenRE.FindStringSubmatch(o.msgs[i].Text); g != nil {
				return g[1]
			}
		}
	}
	t.Fatalf("no invitation mailed to %s", to)
	return ""
}

type env struct {
	svc   *team.Service
	store store.Store
	mail  *outbox
	now   time.Time
	users map[string]store.User
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "nestbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{store: st, mail: &outbox{}, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), users: map[string]store.User{}}
	e.svc, err = team.New(team.Config{Store: st, Mailer: e.mail, LinkKey: []byte(strings.Repeat("k", 32)), Now: func() time.Time { return e.now },
		MaxMembers: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"olga", "adam", "mia", "zed", "eve"} {
		usr := store.User{ID: u, Email: u + "@example.com", Name: u, CreatedAt: e.now}
		if err := st.CreateUser(t.Context(), usr); err != nil {
			t.Fatal(err)
		}
		e.users[u] = usr
	}
	return e
}

// join invites user to id with role by actor and accepts.
func (e *env) join(t *testing.T, actor, id, user string, role store.Role) {
	t.Helper()
	if _, err := e.svc.Invite(t.Context(), actor, id, user+"@example.com", role); err != nil {
		t.Fatalf("Invite(%s by %s): %v", user, actor, err)
	}
	if _, err := e.svc.Accept(t.Context(), e.users[user], e.mail.token(t, user+"@example.com")); err != nil {
		t.Fatalf("Accept(%s): %v", user, err)
	}
}

func isKind(err, kind error) bool {
	return (kind == nil) == (err == nil) && (kind == nil || errors.Is(err, kind))
}

func TestRoles(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tm, err := e.svc.Create(ctx, "olga", "Olga's")
	if err != nil {
		t.Fatal(err)
	}
	e.join(t, "olga", tm.ID, "adam", store.RoleAdmin)
	e.join(t, "adam", tm.ID, "mia", store.RoleMember) // an admin invites too

	for _, tc := range []struct {
		name string
		err  error
		kind error
	}{
		{"member invites", func() error {
			_, err := e.svc.Invite(ctx, "mia", tm.ID, "zed@example.com", store.RoleMember)
			return err
		}(), errdefs.ErrPermission},
		{"outsider invites", func() error {
			_, err := e.svc.Invite(ctx, "zed", tm.ID, "eve@example.com", store.RoleMember)
			return err
		}(), errdefs.ErrNotFound},
		{"invite as owner", func() error {
			_, err := e.svc.Invite(ctx, "olga", tm.ID, "zed@example.com", store.RoleOwner)
			return err
		}(), errdefs.ErrInvalid},
		{"member changes a role", e.svc.SetRole(ctx, "mia", tm.ID, "adam", store.RoleMember), errdefs.ErrPermission},
		{"admin demotes the owner", e.svc.SetRole(ctx, "adam", tm.ID, "olga", store.RoleMember), errdefs.ErrConflict},
		{"admin removes the owner", e.svc.Remove(ctx, "adam", tm.ID, "olga"), errdefs.ErrConflict},
		{"owner leaves", e.svc.Remove(ctx, "olga", tm.ID, "olga"), errdefs.ErrConflict},
		{"member removes another", e.svc.Remove(ctx, "mia", tm.ID, "adam"), errdefs.ErrPermission},
		{"outsider lists members", func() error { _, err := e.svc.Members(ctx, "zed", tm.ID); return err }(), errdefs.ErrNotFound},
		{"member sets the policy", e.svc.SetPolicy(ctx, "mia", tm.ID, store.TeamPolicy{MembersMintKeys: true}), errdefs.ErrPermission},
		{"member mints keys by default", e.svc.CanMintKeys(ctx, tm.ID, "mia"), errdefs.ErrPermission},
		{"admin mints keys", e.svc.CanMintKeys(ctx, tm.ID, "adam"), nil},
		{"owner mints keys", e.svc.CanMintKeys(ctx, tm.ID, "olga"), nil},
		{"outsider mints keys", e.svc.CanMintKeys(ctx, tm.ID, "zed"), errdefs.ErrPermission},
		{"admin allows members", e.svc.SetPolicy(ctx, "adam", tm.ID, store.TeamPolicy{MembersMintKeys: true}), nil},
		{"member mints keys once allowed", e.svc.CanMintKeys(ctx, tm.ID, "mia"), nil},
		{"admin promotes a member", e.svc.SetRole(ctx, "adam", tm.ID, "mia", store.RoleAdmin), nil},
		{"owner demotes an admin", e.svc.SetRole(ctx, "olga", tm.ID, "adam", store.RoleMember), nil},
		{"member leaves", e.svc.Remove(ctx, "adam", tm.ID, "adam"), nil},
	} {
		if !isKind(tc.err, tc.kind) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.kind)
		}
	}
	ms, err := e.svc.Members(ctx, "mia", tm.ID)
	if err != nil || len(ms) != 2 || ms[0].User.ID != "olga" || ms[0].Role != store.RoleOwner || ms[1].User.ID != "mia" || ms[1].Role != store.RoleAdmin {
		t.Errorf("members at the end = %+v, %v", ms, err)
	}
	if mine, err := e.svc.List(ctx, "mia"); err != nil || len(mine) != 1 || mine[0].Team.ID != tm.ID {
		t.Errorf("List(mia) = %+v, %v", mine, err)
	}
}

func TestInvitations(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tm, err := e.svc.Create(ctx, "olga", "<b>Olga</b>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Invite(ctx, "olga", tm.ID, "mia@example.com", store.RoleMember); err != nil {
		t.Fatal(err)
	}
	m := e.mail.msgs[len(e.mail.msgs)-1]
	if strings.Contains(m.HTML, "<b>Olga</b>") || !strings.Contains(m.HTML, "&lt;b&gt;Olga&lt;/b&gt;") {
		t.Errorf("the team's name is not escaped in the HTML part: %s", m.HTML)
	}
	tok := e.mail.token(t, "mia@example.com")
	if _, err := e.svc.Accept(ctx, e.users["zed"], tok); !errors.Is(err, errdefs.ErrPermission) {
		t.Errorf("accept by another email: %v, want permission denied", err)
	}
	if _, err := e.svc.Accept(ctx, e.users["mia"], tok+"x"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("accept a tampered token: %v, want invalid", err)
	}
	if inv, err := e.svc.Accept(ctx, e.users["mia"], tok); err != nil || inv.TeamID != tm.ID {
		t.Fatalf("Accept = %+v, %v", inv, err)
	}
	if _, err := e.svc.Accept(ctx, e.users["mia"], tok); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("accept twice: %v, want conflict", err)
	}
	// A withdrawn invitation is refused; an expired one too.
	inv, err := e.svc.Invite(ctx, "olga", tm.ID, "zed@example.com", store.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	tok = e.mail.token(t, "zed@example.com")
	if err := e.svc.Withdraw(ctx, "mia", tm.ID, inv.ID); !errors.Is(err, errdefs.ErrPermission) {
		t.Errorf("a member withdraws: %v, want permission denied", err)
	}
	if err := e.svc.Withdraw(ctx, "olga", tm.ID, inv.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Accept(ctx, e.users["zed"], tok); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("accept a withdrawn invitation: %v, want invalid", err)
	}
	if _, err := e.svc.Invite(ctx, "olga", tm.ID, "zed@example.com", store.RoleMember); err != nil {
		t.Fatal(err)
	}
	tok = e.mail.token(t, "zed@example.com")
	e.now = e.now.Add(team.DefaultInviteTTL)
	if _, err := e.svc.Accept(ctx, e.users["zed"], tok); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("accept an expired invitation: %v, want invalid", err)
	}
	if invs, err := e.svc.Invitations(ctx, "olga", tm.ID); err != nil || len(invs) != 0 {
		t.Errorf("pending after expiry = %+v, %v", invs, err)
	}
	// A mail that fails leaves no invitation behind.
	e.mail.fail = errors.New("smtp down")
	if _, err := e.svc.Invite(ctx, "olga", tm.ID, "eve@example.com", store.RoleMember); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Invite with the mailer down: %v, want unavailable", err)
	}
	e.mail.fail = nil
	if invs, _ := e.svc.Invitations(ctx, "olga", tm.ID); len(invs) != 0 {
		t.Errorf("an unsent invitation stayed: %+v", invs)
	}
	// The member limit (4): olga, mia, then two more.
	e.join(t, "olga", tm.ID, "zed", store.RoleMember)
	e.join(t, "olga", tm.ID, "adam", store.RoleMember)
	if _, err := e.svc.Invite(ctx, "olga", tm.ID, "eve@example.com", store.RoleMember); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Accept(ctx, e.users["eve"], e.mail.token(t, "eve@example.com")); !errors.Is(err, errdefs.ErrExhausted) {
		t.Errorf("accept into a full team: %v, want exhausted", err)
	}
}

func TestCreateTeams(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"", "  ", strings.Repeat("n", 101), "two\nlines"} {
		if _, err := e.svc.Create(t.Context(), "olga", name); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Create(%q): %v, want invalid", name, err)
		}
	}
	for i := range team.DefaultMaxOwned {
		if _, err := e.svc.Create(t.Context(), "olga", "t"); err != nil {
			t.Fatalf("Create #%d: %v", i+1, err)
		}
	}
	if _, err := e.svc.Create(t.Context(), "olga", "one too many"); !errors.Is(err, errdefs.ErrExhausted) {
		t.Errorf("Create past the limit: %v, want exhausted", err)
	}
}

func TestTransfer(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tm, err := e.svc.Create(ctx, "olga", "Olga's")
	if err != nil {
		t.Fatal(err)
	}
	e.join(t, "olga", tm.ID, "adam", store.RoleAdmin)
	for _, tc := range []struct {
		name      string
		actor, to string
		kind      error
	}{
		{"an admin takes it", "adam", "adam", errdefs.ErrPermission},
		{"an outsider", "zed", "zed", errdefs.ErrNotFound},
		{"to a non-member", "olga", "zed", errdefs.ErrNotFound},
		{"to an admin", "olga", "adam", nil},
		{"the former owner again", "olga", "olga", errdefs.ErrPermission},
	} {
		if err := e.svc.Transfer(ctx, tc.actor, tm.ID, tc.to); !isKind(err, tc.kind) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.kind)
		}
	}
	ms, _ := e.svc.Members(ctx, "adam", tm.ID)
	if len(ms) != 2 || ms[0].User.ID != "adam" || ms[0].Role != store.RoleOwner || ms[1].Role != store.RoleAdmin {
		t.Errorf("members after the transfer: %+v", ms)
	}
}
