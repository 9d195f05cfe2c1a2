package sqlite_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlite"
)

// schemaTables are the tables of version Latest.
var schemaTables = []string{
	"accounts", "api_keys", "audit_entries", "capsule_events", "capsules", "hosts", "installation", "invitations", "join_tokens", "leases", "schema_migrations", "sessions", "snapshots", "team_limits", "team_members", "team_settings", "teams", "usage_capsule_days", "usage_daily", "usage_hourly", "usage_rollup", "usage_samples", "users",
}

// v1Tables are the tables of version 1, before team_limits (200).
var v1Tables = []string{
	"api_keys", "capsule_events", "capsules", "hosts", "schema_migrations", "team_members", "teams", "users",
}

func TestMigrateEmpty(t *testing.T) {
	db := rawDB(t, filepath.Join(t.TempDir(), "nestbox.db"))
	for i, step := range []struct {
		target int
		tables []string
	}{
		{sqlite.Latest, schemaTables},
		{sqlite.Latest, schemaTables}, // already there: nothing to do
		{0, nil},
		{0, nil},
		{sqlite.Latest, schemaTables},
		// Down and up across the gap between versions 1 and 200.
		{1, v1Tables},
		{sqlite.Latest, schemaTables},
		{1, v1Tables},
		{0, nil},
		{1, v1Tables},
		{sqlite.Latest, schemaTables},
	} {
		if err := sqlite.Migrate(t.Context(), db, step.target); err != nil {
			t.Fatalf("step %d: Migrate(%d): %v", i, step.target, err)
		}
		if got := tables(t, db); !slices.Equal(got, step.tables) {
			t.Errorf("step %d: tables after Migrate(%d) = %v, want %v", i, step.target, got, step.tables)
		}
		if v := version(t, db); v != step.target {
			t.Errorf("step %d: version after Migrate(%d) = %d", i, step.target, v)
		}
	}
}

// TestMigratePopulated migrates a database with rows in every table down to
// nothing, with foreign keys enforced, and up again.
func TestMigratePopulated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nestbox.db")
	populate(t, path)
	db := rawDB(t, path)
	for _, table := range schemaTables {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil || n == 0 {
			t.Fatalf("%s has %d rows (err %v), want some to migrate down", table, n, err)
		}
	}

	if err := sqlite.Migrate(t.Context(), db, 0); err != nil {
		t.Fatalf("Migrate(0) of a populated database: %v", err)
	}
	if got := tables(t, db); len(got) != 0 {
		t.Errorf("tables after Migrate(0) = %v, want none", got)
	}
	if err := sqlite.Migrate(t.Context(), db, sqlite.Latest); err != nil {
		t.Fatalf("Migrate(%d) after Migrate(0): %v", sqlite.Latest, err)
	}
	if got := tables(t, db); !slices.Equal(got, schemaTables) {
		t.Errorf("tables after migrating up again = %v, want %v", got, schemaTables)
	}
	db.Close()

	// The schema migrated up again is one the store can use.
	populate(t, path)
}

func TestMigrateBadTarget(t *testing.T) {
	db := rawDB(t, filepath.Join(t.TempDir(), "nestbox.db"))
	for _, target := range []int{-1, sqlite.Latest + 1} {
		if err := sqlite.Migrate(t.Context(), db, target); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Migrate(%d): %v, want ErrInvalid", target, err)
		}
	}
}

// TestOpenNewerSchema checks that an older binary refuses a database that a
// newer one migrated, rather than migrating it down and losing data.
func TestOpenNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nestbox.db")
	populate(t, path)
	db := rawDB(t, path)
	if _, err := db.Exec("INSERT INTO schema_migrations (version, applied_at) VALUES (?, 'later')", sqlite.Latest+1); err != nil {
		t.Fatalf("record a newer version: %v", err)
	}
	if s, err := sqlite.Open(t.Context(), path); err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema succeeded, want an error")
	}
	if got := tables(t, db); !slices.Equal(got, schemaTables) {
		t.Errorf("tables after the refused Open = %v, want %v", got, schemaTables)
	}
}

// populate opens the store at path and puts rows into every table.
func populate(t *testing.T, path string) {
	t.Helper()
	ctx := t.Context()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	now := time.Now()
	limit := 5
	for _, step := range []struct {
		name string
		err  error
	}{
		{"CreateUser", s.CreateUser(ctx, store.User{ID: "u1", Email: "a@example.com", CreatedAt: now})},
		{"CreateTeam", s.CreateTeam(ctx, store.Team{ID: "t1", CreatedAt: now}, "u1")},
		{"CreateAPIKey", s.CreateAPIKey(ctx, store.APIKey{ID: "k1", TeamID: "t1", Hash: "h", CreatedBy: "u1", CreatedAt: now})},
		{"SetTeamLimits", s.SetTeamLimits(ctx, "t1", store.TeamLimits{Capsules: &limit})},
		{"CreateJoinToken", s.CreateJoinToken(ctx, store.JoinToken{ID: "j1", Hash: "jh", Created: now, Expires: now.Add(time.Hour), UsesLeft: 1}, 0, now)},
		{"RegisterHost", s.RegisterHost(ctx, store.Host{ID: "h1", Address: "http://h1", LastSeen: now, Created: now}, "jh", now)},
		{"AcquireLease", func() error { _, err := s.AcquireLease(ctx, "monitor", "cp1", now.Add(time.Minute), now); return err }()},
		{"CreateSnapshotWithin", s.CreateSnapshotWithin(ctx, store.Snapshot{Snapshot: nestbox.Snapshot{
			ID: "s1", TeamID: "t1", CapsuleID: "c1", HostID: "h1", Status: nestbox.SnapshotReady, CreatedAt: now,
		}, UpdatedAt: now}, store.Quota{})},
		{"CreateAccount", s.CreateAccount(ctx, store.User{ID: "u2", Email: "b@example.com", CreatedAt: now},
			store.Account{UserID: "u2", PasswordHash: "h", Status: store.AccountActive, CreatedAt: now})},
		{"SetTeamPolicy", s.SetTeamPolicy(ctx, "t1", store.TeamPolicy{MembersMintKeys: true})},
		{"CreateInvitation", s.CreateInvitation(ctx, store.Invitation{ID: "i1", TeamID: "t1", Email: "c@example.com", Role: store.RoleMember,
			InvitedBy: "u1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, 10, now)},
		{"CreateSession", s.CreateSession(ctx, store.Session{ID: "s1", UserID: "u2", TeamID: "t1", TokenHash: "a", RefreshHash: "r",
			ExpiresAt: now, RefreshExpiresAt: now, CreatedAt: now}, 10)},
		{"CreateCapsule", s.CreateCapsule(ctx, store.Capsule{Capsule: nestbox.Capsule{
			ID: "c1", TeamID: "t1", Status: nestbox.StatusStarting, HostID: "h1", CreatedAt: now,
		}, UpdatedAt: now})},
		{"InsertAuditEntry", s.InsertAuditEntry(ctx, nestbox.AuditEntry{ID: "a1", Time: now, Scope: nestbox.AuditScopeTeam, TeamID: "t1",
			Actor: nestbox.AuditActor{Type: nestbox.AuditActorUser, ID: "u1"}, ResourceType: "capsule", ResourceID: "c1",
			Action: "capsule.create", Status: nestbox.AuditSuccess, Metadata: map[string]string{"email": "a@example.com"}})},
		{"AddUsageSamples", s.AddUsageSamples(ctx, []store.UsageSample{{TeamID: "t1", CapsuleID: "c1", At: now, Seconds: 30, VCPUs: 1, MemoryMB: 512}})},
		{"RollUsageDay", func() error { _, err := s.RollUsageDay(ctx, now); return err }()},
		{"RollUsageHour", func() error { _, err := s.RollUsageHour(ctx, now); return err }()},
	} {
		if step.err != nil {
			t.Fatalf("populate: %s: %v", step.name, step.err)
		}
	}
}
