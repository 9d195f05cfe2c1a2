package audit_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/audit"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlite"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), sqlite.Memory)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// clock is a settable clock.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

var t0 = time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)

func newLogger(t *testing.T, st store.Store, c *clock, more func(*audit.Config)) *audit.Logger {
	t.Helper()
	cfg := audit.Config{Store: st, Now: c.Now}
	if more != nil {
		more(&cfg)
	}
	l, err := audit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestRecordCompletes: Record fills in ID, time, status and resource type,
// and the entry reads back as completed.
func TestRecordCompletes(t *testing.T) {
	st := openStore(t)
	l := newLogger(t, st, &clock{t0}, nil)
	err := l.Record(t.Context(), audit.Entry{Scope: nestbox.AuditScopeTeam, TeamID: "t1", Actor: audit.KeyActor("key_1", "ci"),
		Action: "capsule.pause", ResourceID: "c1", Metadata: map[string]string{"memory": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	es, _, err := l.List(t.Context(), store.AuditFilter{TeamID: "t1"})
	if err != nil || len(es) != 1 {
		t.Fatalf("List = %+v, %v; want one entry", es, err)
	}
	e := es[0]
	if !strings.HasPrefix(e.ID, "aud_") || !e.Time.Equal(t0.Truncate(time.Microsecond)) || e.Status != nestbox.AuditSuccess ||
		e.ResourceType != "capsule" || e.Actor != audit.KeyActor("key_1", "ci") || e.Metadata["memory"] != "true" {
		t.Errorf("recorded entry = %+v", e)
	}
}

func TestRecordRefuses(t *testing.T) {
	l := newLogger(t, openStore(t), &clock{t0}, nil)
	ok := audit.Entry{Scope: nestbox.AuditScopeTeam, TeamID: "t1", Actor: audit.UserActor("u1", "Ada"), Action: "capsule.create"}
	big := map[string]string{}
	for i := range audit.MaxMetadataKeys + 1 {
		big[strings.Repeat("k", i+1)] = "v"
	}
	for _, tc := range []struct {
		name string
		edit func(*audit.Entry)
	}{
		{"no scope", func(e *audit.Entry) { e.Scope = "" }},
		{"unknown scope", func(e *audit.Entry) { e.Scope = "everyone" }},
		{"team entry without a team", func(e *audit.Entry) { e.TeamID = "" }},
		{"no actor type", func(e *audit.Entry) { e.Actor.Type = "" }},
		{"action without a dot", func(e *audit.Entry) { e.Action = "create" }},
		{"action without a verb", func(e *audit.Entry) { e.Action = "capsule." }},
		{"action of another type", func(e *audit.Entry) { e.ResourceType = "snapshot" }},
		{"unknown status", func(e *audit.Entry) { e.Status = "maybe" }},
		{"too many metadata keys", func(e *audit.Entry) { e.Metadata = big }},
		{"long metadata value", func(e *audit.Entry) {
			e.Metadata = map[string]string{"k": strings.Repeat("v", audit.MaxMetadataValue+1)}
		}},
		{"empty metadata key", func(e *audit.Entry) { e.Metadata = map[string]string{"": "v"} }},
	} {
		e := ok
		tc.edit(&e)
		if err := l.Record(t.Context(), e); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
	admin := ok
	admin.Scope, admin.TeamID, admin.Actor = nestbox.AuditScopeAdmin, "", audit.SystemActor()
	if err := l.Record(t.Context(), admin); err != nil {
		t.Errorf("an admin entry by the system without a team: %v", err)
	}
	if err := l.Record(t.Context(), ok); err != nil {
		t.Errorf("the valid entry: %v", err)
	}
}

// TestListNestedActions: an action is given in full or as its verb within
// its resource type, and not without one.
func TestListNestedActions(t *testing.T) {
	l := newLogger(t, openStore(t), &clock{t0}, nil)
	for _, a := range []string{"capsule.pause", "capsule.resume", "snapshot.delete"} {
		if err := l.Record(t.Context(), audit.Entry{Scope: nestbox.AuditScopeTeam, TeamID: "t1", Actor: audit.SystemActor(), Action: a}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []store.AuditFilter{
		{ResourceType: "capsule", Action: "pause"},
		{ResourceType: "capsule", Action: "capsule.pause"},
	} {
		es, _, err := l.List(t.Context(), f)
		if err != nil || len(es) != 1 || es[0].Action != "capsule.pause" {
			t.Errorf("List(%+v) = %+v, %v; want capsule.pause alone", f, es, err)
		}
	}
	for _, f := range []store.AuditFilter{{Action: "pause"}, {Action: "capsule.pause"}, {ResourceType: "snapshot", Action: "capsule.pause"}} {
		if _, _, err := l.List(t.Context(), f); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("List(%+v): %v, want ErrInvalid", f, err)
		}
	}
}

// TestRetention: Run deletes what is older than the retention, on the one
// logger that holds the lease; a negative retention keeps everything.
func TestRetention(t *testing.T) {
	st := openStore(t)
	c := &clock{t0}
	a := newLogger(t, st, c, func(cfg *audit.Config) { cfg.Retention = 48 * time.Hour; cfg.Holder = "a" })
	for _, age := range []time.Duration{72 * time.Hour, 51 * time.Hour, 45 * time.Hour, time.Minute} {
		if err := a.Record(t.Context(), audit.Entry{Time: t0.Add(-age), Scope: nestbox.AuditScopeAdmin, Actor: audit.SystemActor(), Action: "host.cordon"}); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		es, _, err := st.ListAuditEntries(t.Context(), store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	// b holds the lease first: a's pass deletes nothing.
	if ok, err := st.AcquireLease(t.Context(), "audit-retention", "b", t0.Add(time.Hour), t0); err != nil || !ok {
		t.Fatalf("take the lease for b: %v %v", ok, err)
	}
	runOnce(t, a)
	if n := count(); n != 4 {
		t.Errorf("after a pass without the lease: %d entries, want 4", n)
	}
	c.now = t0.Add(2 * time.Hour) // b's lease expired; the two oldest are past 48 h
	runOnce(t, a)
	if n := count(); n != 2 {
		t.Errorf("after a pass with the lease: %d entries, want 2", n)
	}
	forever := newLogger(t, st, &clock{t0.Add(1000 * time.Hour)}, func(cfg *audit.Config) { cfg.Retention = -1 })
	if n, err := forever.Purge(t.Context()); err != nil || n != 0 || count() != 2 {
		t.Errorf("Purge with a negative retention = %d, %v; %d entries left, want 2", n, err, count())
	}
}

// TestTeamCap: a pass of Run keeps each team's newest MaxTeamEntries
// scope team entries, over several batches, anonymised entries counted
// like any other; admin entries and a team under the cap keep theirs; a
// control plane without the lease deletes nothing; a negative cap keeps
// everything.
func TestTeamCap(t *testing.T) {
	st := openStore(t)
	c := &clock{t0}
	a := newLogger(t, st, c, func(cfg *audit.Config) { cfg.MaxTeamEntries = 3; cfg.Holder = "a" })
	const many = 2500 // more than two of the worker's batches
	for i := range many {
		e := audit.Entry{Time: t0.Add(time.Duration(i-many) * time.Second), Scope: nestbox.AuditScopeTeam, TeamID: "t_busy",
			Actor: audit.KeyActor("key_1", "ci"), Action: "capsule.create"}
		if i == many-2 {
			e.Actor = nestbox.AuditActor{Type: nestbox.AuditActorUser, Name: store.AnonymousActor}
		}
		if err := a.Record(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		for _, e := range []audit.Entry{
			{Time: t0.Add(time.Duration(i-10) * time.Hour), Scope: nestbox.AuditScopeAdmin, TeamID: "t_busy", Actor: audit.SystemActor(), Action: "host.cordon"},
			{Time: t0.Add(time.Duration(i-10) * time.Hour), Scope: nestbox.AuditScopeTeam, TeamID: "t_calm", Actor: audit.SystemActor(), Action: "capsule.pause"},
		} {
			if i < 3 || e.Scope == nestbox.AuditScopeAdmin {
				if err := a.Record(t.Context(), e); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	count := func(f store.AuditFilter) int {
		t.Helper()
		n := 0
		for {
			es, next, err := st.ListAuditEntries(t.Context(), f)
			if err != nil {
				t.Fatal(err)
			}
			n += len(es)
			if next == "" {
				return n
			}
			f.Cursor = next
		}
	}
	busy := store.AuditFilter{TeamID: "t_busy", Scope: nestbox.AuditScopeTeam, Limit: 1000}

	if ok, err := st.AcquireLease(t.Context(), "audit-retention", "b", t0.Add(time.Hour), t0); err != nil || !ok {
		t.Fatalf("take the lease for b: %v %v", ok, err)
	}
	runOnce(t, a)
	if n := count(busy); n != many {
		t.Errorf("after a pass without the lease: %d entries, want %d", n, many)
	}

	c.now = t0.Add(2 * time.Hour) // b's lease expired
	runOnce(t, a)
	es, _, err := st.ListAuditEntries(t.Context(), busy)
	if err != nil {
		t.Fatal(err)
	}
	newest := t0.Truncate(time.Microsecond).Add(-time.Second)
	if len(es) != 3 || !es[0].Time.Equal(newest) || !es[2].Time.Equal(newest.Add(-2*time.Second)) ||
		es[1].Actor.Name != store.AnonymousActor {
		t.Errorf("t_busy keeps %+v, want its 3 newest, the anonymised one among them", es)
	}
	if n := count(store.AuditFilter{TeamID: "t_busy", Scope: nestbox.AuditScopeAdmin}); n != 5 {
		t.Errorf("admin entries under t_busy: %d, want all 5 (they follow the retention only)", n)
	}
	if n := count(store.AuditFilter{TeamID: "t_calm"}); n != 3 {
		t.Errorf("t_calm, at its cap: %d entries, want 3", n)
	}

	// The anonymised entry is old now: a cap of 2 deletes it as any other.
	a2 := newLogger(t, st, c, func(cfg *audit.Config) { cfg.MaxTeamEntries = 2; cfg.Holder = "a" })
	if n, err := a2.Purge(t.Context()); err != nil || n != 2 {
		t.Errorf("Purge with a cap of 2 = %d, %v; want 2 (one of t_busy, one of t_calm)", n, err)
	}
	if n := count(busy); n != 2 {
		t.Errorf("t_busy with a cap of 2: %d entries", n)
	}
	forever := newLogger(t, st, c, func(cfg *audit.Config) { cfg.MaxTeamEntries = -1; cfg.Retention = -1 })
	if err := forever.Record(t.Context(), audit.Entry{Scope: nestbox.AuditScopeTeam, TeamID: "t_busy", Actor: audit.SystemActor(), Action: "capsule.pause"}); err != nil {
		t.Fatal(err)
	}
	if n, err := forever.Purge(t.Context()); err != nil || n != 0 || count(busy) != 3 {
		t.Errorf("Purge with no cap = %d, %v; %d entries of t_busy, want 3", n, err, count(busy))
	}
}

// runOnce runs one pass of l's worker (the pass Run makes at once and
// then every PurgeEvery).
func runOnce(t *testing.T, l *audit.Logger) {
	t.Helper()
	l.PurgeOnce(t.Context())
}

// TestRunStops: Run returns once its context is done.
func TestRunStops(t *testing.T) {
	l := newLogger(t, openStore(t), &clock{t0}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	cancel()
	<-done // go test's deadline bounds a Run that would not stop
}
