package platform

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/account"
	"nestbox.dev/internal/audit"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/mail"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlite"
)

// failingAudit is a store whose audit anonymisation fails.
type failingAudit struct{ store.Store }

func (failingAudit) AnonymiseAuditEntries(context.Context, string) (int, error) {
	return 0, errdefs.Unavailable("the audit log is down")
}

// TestPurgeAnonymisesFirst: the account service a platform runs
// anonymises a purged user's audit entries before deleting the user, and
// keeps the user when that fails.
func TestPurgeAnonymisesFirst(t *testing.T) {
	for _, failing := range []bool{true, false} {
		t.Run(map[bool]string{true: "failing", false: "anonymised"}[failing], func(t *testing.T) { testPurge(t, failing) })
	}
}

func testPurge(t *testing.T, failing bool) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, sqlite.Memory)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	old := time.Now().Add(-account.DefaultGrace - time.Hour)
	if err := st.CreateAccount(ctx, store.User{ID: "usr_old", Email: "old@example.com", CreatedAt: old},
		store.Account{UserID: "usr_old", PasswordHash: "x", Status: store.AccountActive, CreatedAt: old}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetAccountStatus(ctx, "usr_old", store.AccountActive, store.AccountDeleted, old); err != nil {
		t.Fatal(err)
	}
	if err := st.InsertAuditEntry(ctx, nestbox.AuditEntry{ID: "aud_1", Time: old, Scope: nestbox.AuditScopeTeam, TeamID: "t1",
		Actor: nestbox.AuditActor{Type: nestbox.AuditActorUser, ID: "usr_old", Name: "old@example.com"}, ResourceType: "capsule",
		Action: "capsule.create", Status: nestbox.AuditSuccess}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	var ast store.Store = st
	if failing {
		ast = failingAudit{st}
	}
	lg, err := audit.New(audit.Config{Store: ast, Retention: time.Hour, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	acc, _, err := newAccounts(st, mail.Log{Logger: log}, []byte("0123456789abcdef0123456789abcdef"), "http://127.0.0.1:1", lg, log)
	if err != nil {
		t.Fatal(err)
	}
	n, err := acc.Purge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, gerr := st.GetUser(ctx, "usr_old")
	es, _, lerr := st.ListAuditEntries(ctx, store.AuditFilter{})
	if lerr != nil || len(es) != 1 {
		t.Fatalf("entries: %v, %v", es, lerr)
	}
	if failing {
		if n != 0 || gerr != nil || es[0].Actor.ID != "usr_old" {
			t.Errorf("purge with anonymisation failing: %d purged, user %v, actor %+v; want the user kept as it was", n, gerr, es[0].Actor)
		}
		return
	}
	if n != 1 || !errors.Is(gerr, errdefs.ErrNotFound) || es[0].Actor != (nestbox.AuditActor{Type: nestbox.AuditActorUser, Name: store.AnonymousActor}) {
		t.Errorf("purge: %d purged, user %v, actor %+v; want the user gone and its entry anonymised", n, gerr, es[0].Actor)
	}
}

// TestPurgeRecordsHandOver: a team that a purge hands over to its next
// member has the change in its log, by the platform, naming the new owner
// and nothing of the purged one.
func TestPurgeRecordsHandOver(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, sqlite.Memory)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	old := time.Now().Add(-account.DefaultGrace - time.Hour)
	if err := st.CreateAccount(ctx, store.User{ID: "usr_old", Email: "old@example.com", CreatedAt: old},
		store.Account{UserID: "usr_old", PasswordHash: "x", Status: store.AccountActive, CreatedAt: old}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, store.User{ID: "usr_next", Email: "next@example.com", CreatedAt: old}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateTeam(ctx, store.Team{ID: "t1", Name: "t1", CreatedAt: old}, "usr_old"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	inv := store.Invitation{ID: "inv_1", TeamID: "t1", Email: "next@example.com", Role: store.RoleMember, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateInvitation(ctx, inv, 10, now); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AcceptInvitation(ctx, inv.ID, "usr_next", now, 0); err != nil {
		t.Fatal(err)
	}
	if err := st.SetAccountStatus(ctx, "usr_old", store.AccountActive, store.AccountDeleted, old); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	lg, err := audit.New(audit.Config{Store: st, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	acc, _, err := newAccounts(st, mail.Log{Logger: log}, []byte("0123456789abcdef0123456789abcdef"), "http://127.0.0.1:1", lg, log)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := acc.Purge(ctx); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1", n, err)
	}
	es, _, err := st.ListAuditEntries(ctx, store.AuditFilter{TeamID: "t1"})
	if err != nil || len(es) != 1 {
		t.Fatalf("t1's log = %+v, %v; want the hand-over", es, err)
	}
	x := es[0]
	if x.Scope != nestbox.AuditScopeTeam || x.Action != "member.transfer_ownership" || x.ResourceID != "usr_next" ||
		x.Actor != audit.SystemActor() || x.Metadata["reason"] != "owner_purged" || len(x.Metadata) != 1 {
		t.Errorf("the hand-over's entry = %+v, want member.transfer_ownership to usr_next by the platform, reason owner_purged", x)
	}
}
