package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// auditEntry is a successful team entry of team by a user actor at time
// n minutes after t0.
func auditEntry(id, team, action, resourceID string, n int) nestbox.AuditEntry {
	rt, _, _ := strings.Cut(action, ".")
	return nestbox.AuditEntry{
		ID: id, Time: at(n), Scope: nestbox.AuditScopeTeam, TeamID: team,
		Actor:        nestbox.AuditActor{Type: nestbox.AuditActorUser, ID: "u_actor", Name: "Actor"},
		ResourceType: rt, ResourceID: resourceID, Action: action, Status: nestbox.AuditSuccess,
	}
}

func insertAudit(t *testing.T, s store.Store, es ...nestbox.AuditEntry) {
	t.Helper()
	for _, e := range es {
		if err := s.InsertAuditEntry(t.Context(), e); err != nil {
			t.Fatalf("InsertAuditEntry(%s): %v", e.ID, err)
		}
	}
}

// auditIDs lists the entries f selects, every page, and returns their IDs.
func auditIDs(t *testing.T, s store.Store, f store.AuditFilter) []string {
	t.Helper()
	var ids []string
	for {
		page, next, err := s.ListAuditEntries(t.Context(), f)
		if err != nil {
			t.Fatalf("ListAuditEntries(%+v): %v", f, err)
		}
		for _, e := range page {
			ids = append(ids, e.ID)
		}
		if next == "" {
			return ids
		}
		f.Cursor = next
	}
}

func testAuditRoundTrip(t *testing.T, s store.Store) {
	want := nestbox.AuditEntry{
		ID: "aud_1", Time: at(1), Scope: nestbox.AuditScopeAdmin, TeamID: "team_platform",
		Actor:        nestbox.AuditActor{Type: nestbox.AuditActorAPIKey, ID: "key_1", Name: "ci"},
		ResourceType: "user", ResourceID: "u1", Action: "user.deactivate", Status: nestbox.AuditFailure,
		Metadata: map[string]string{"keys_revoked": "2", "error": "not_found"},
	}
	insertAudit(t, s, want, auditEntry("aud_2", "t1", "capsule.create", "c1", 2))
	if err := s.InsertAuditEntry(t.Context(), want); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("InsertAuditEntry of a taken ID: %v, want ErrAlreadyExists", err)
	}
	got, next, err := s.ListAuditEntries(t.Context(), store.AuditFilter{Scope: nestbox.AuditScopeAdmin})
	if err != nil || next != "" || len(got) != 1 {
		t.Fatalf("ListAuditEntries(admin) = %+v, %q, %v; want one entry", got, next, err)
	}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("entry read back = %+v, want %+v", got[0], want)
	}
	got, _, err = s.ListAuditEntries(t.Context(), store.AuditFilter{TeamID: "t1"})
	if err != nil || len(got) != 1 || got[0].ID != "aud_2" || got[0].Metadata != nil {
		t.Errorf("ListAuditEntries(team t1) = %+v, %v; want aud_2 without metadata", got, err)
	}
}

// testAuditPages: pages are newest first, ties on time broken by ID, and
// entries inserted between two pages neither shift nor repeat what
// follows the cursor.
func testAuditPages(t *testing.T, s store.Store) {
	for i := range 7 {
		// Two entries per minute: the ID orders them within it.
		insertAudit(t, s, auditEntry(fmt.Sprintf("aud_%02d", i), "t1", "capsule.pause", "c1", i/2))
	}
	insertAudit(t, s, auditEntry("aud_other", "t2", "capsule.pause", "c9", 1))
	f := store.AuditFilter{TeamID: "t1", Limit: 3}
	page1, next, err := s.ListAuditEntries(t.Context(), f)
	if err != nil || next == "" {
		t.Fatalf("page 1: %v, next %q", err, next)
	}
	// Newer entries, and one at the time of the cursor with a greater ID,
	// all land before the cursor.
	insertAudit(t, s, auditEntry("aud_new1", "t1", "capsule.pause", "c1", 10), auditEntry("aud_04z", "t1", "capsule.pause", "c1", 2))
	var ids []string
	for _, e := range page1 {
		ids = append(ids, e.ID)
	}
	f.Cursor = next
	ids = append(ids, auditIDs(t, s, f)...)
	want := []string{"aud_06", "aud_05", "aud_04", "aud_03", "aud_02", "aud_01", "aud_00"}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("pages with inserts between them = %v, want %v", ids, want)
	}
	if all := auditIDs(t, s, store.AuditFilter{TeamID: "t1"}); len(all) != 9 || all[0] != "aud_new1" {
		t.Errorf("a fresh listing = %v, want 9 entries, aud_new1 first", all)
	}
	for _, c := range []string{"x", "MjAyNQ", next + "x"} {
		if _, _, err := s.ListAuditEntries(t.Context(), store.AuditFilter{Cursor: c}); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("cursor %q: %v, want ErrInvalid", c, err)
		}
	}
	if _, _, err := s.ListAuditEntries(t.Context(), store.AuditFilter{Limit: -1}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("limit -1: %v, want ErrInvalid", err)
	}
}

// testAuditFilters: resource type, then an action within it; actor; time
// range [From, To).
func testAuditFilters(t *testing.T, s store.Store) {
	e := func(id, action string, n int, actor string) nestbox.AuditEntry {
		x := auditEntry(id, "t1", action, "r", n)
		x.Actor.ID = actor
		return x
	}
	insertAudit(t, s,
		e("a1", "capsule.create", 1, "u1"), e("a2", "capsule.pause", 2, "u1"), e("a3", "capsule.pause", 3, "u2"),
		e("a4", "snapshot.create", 4, "u2"), e("a5", "member.remove", 5, "u1"))
	for _, tc := range []struct {
		name string
		f    store.AuditFilter
		want []string
	}{
		{"type", store.AuditFilter{ResourceType: "capsule"}, []string{"a3", "a2", "a1"}},
		{"type and action", store.AuditFilter{ResourceType: "capsule", Action: "capsule.pause"}, []string{"a3", "a2"}},
		{"type, action, actor", store.AuditFilter{ResourceType: "capsule", Action: "capsule.pause", ActorID: "u1"}, []string{"a2"}},
		{"actor", store.AuditFilter{ActorID: "u2"}, []string{"a4", "a3"}},
		{"from", store.AuditFilter{From: at(4)}, []string{"a5", "a4"}},
		{"to", store.AuditFilter{To: at(2)}, []string{"a1"}},
		{"range and type", store.AuditFilter{From: at(2), To: at(5), ResourceType: "capsule"}, []string{"a3", "a2"}},
		{"no match", store.AuditFilter{ResourceType: "api_key"}, nil},
		{"another team", store.AuditFilter{TeamID: "t2"}, nil},
	} {
		tc.f.TeamID = cmp.Or(tc.f.TeamID, "t1")
		if got := auditIDs(t, s, tc.f); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, f := range []store.AuditFilter{
		{Action: "capsule.pause"},                           // an action needs its type
		{ResourceType: "snapshot", Action: "capsule.pause"}, // and must be of it
		{ResourceType: "capsule", Action: "capsules.pause"},
	} {
		if _, _, err := s.ListAuditEntries(t.Context(), f); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ListAuditEntries(%+v): %v, want ErrInvalid", f, err)
		}
	}
}

// testAuditAnonymise: a user's entries lose its ID (as actor and as
// resource), its name and its email; other users' entries are untouched.
func testAuditAnonymise(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.CreateUser(ctx, store.User{ID: "u_gone", Email: "gone_1%@example.com", Name: "Gone", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, store.User{ID: "u_stay", Email: "stay@example.com", Name: "Stay", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	byGone := auditEntry("by_gone", "t1", "capsule.create", "c1", 1)
	byGone.Actor = nestbox.AuditActor{Type: nestbox.AuditActorUser, ID: "u_gone", Name: "Gone"}
	byGone.Metadata = map[string]string{"email": "gone_1%@example.com", "template": "base"}
	aboutGone := auditEntry("about_gone", "team_platform", "user.deactivate", "u_gone", 2)
	aboutGone.Scope = nestbox.AuditScopeAdmin
	aboutGone.Metadata = map[string]string{"email": "old-address@example.com", "keys_revoked": "1"}
	mentions := auditEntry("mentions", "t1", "invitation.create", "inv_1", 3)
	mentions.Metadata = map[string]string{"invitee": "GONE_1%@example.com", "role": "member"}
	other := auditEntry("other", "t1", "invitation.create", "inv_2", 4)
	other.Actor = nestbox.AuditActor{Type: nestbox.AuditActorUser, ID: "u_stay", Name: "Stay"}
	// A near miss for the LIKE's wildcards: _ and % must match only
	// themselves.
	other.Metadata = map[string]string{"email": "goneX1Y@example.com"}
	insertAudit(t, s, byGone, aboutGone, mentions, other)

	n, err := s.AnonymiseAuditEntries(ctx, "u_gone")
	if err != nil || n != 3 {
		t.Fatalf("AnonymiseAuditEntries = %d, %v; want 3", n, err)
	}
	got := map[string]nestbox.AuditEntry{}
	for _, f := range []store.AuditFilter{{Scope: nestbox.AuditScopeTeam}, {Scope: nestbox.AuditScopeAdmin}} {
		es, _, err := s.ListAuditEntries(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			got[e.ID] = e
		}
	}
	byGone.Actor = nestbox.AuditActor{Type: nestbox.AuditActorUser, Name: store.AnonymousActor}
	byGone.Metadata = map[string]string{"template": "base"}
	aboutGone.ResourceID = ""
	aboutGone.Metadata = map[string]string{"keys_revoked": "1"}
	mentions.Metadata = map[string]string{"role": "member"}
	for _, want := range []nestbox.AuditEntry{byGone, aboutGone, mentions, other} {
		if g := got[want.ID]; !reflect.DeepEqual(g, want) {
			t.Errorf("%s after anonymising = %+v, want %+v", want.ID, g, want)
		}
	}
	if n, err := s.AnonymiseAuditEntries(ctx, "u_gone"); err != nil || n != 0 {
		t.Errorf("AnonymiseAuditEntries again = %d, %v; want 0", n, err)
	}
	if _, err := s.AnonymiseAuditEntries(ctx, "u_nobody"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("AnonymiseAuditEntries(unknown user): %v, want ErrNotFound", err)
	}
	if !maps.Equal(got["other"].Metadata, other.Metadata) {
		t.Errorf("another user's entry changed: %+v", got["other"])
	}
}

// testAuditRetention: entries older than the cutoff go, oldest first, a
// batch at a time; newer ones stay.
func testAuditRetention(t *testing.T, s store.Store) {
	for i := range 5 {
		e := auditEntry(fmt.Sprintf("r%d", i), "t1", "capsule.create", "c", i*10)
		if i%2 == 1 {
			e.Scope = nestbox.AuditScopeAdmin
		}
		insertAudit(t, s, e)
	}
	cutoff := at(25) // r0, r1, r2 are older
	if n, err := s.DeleteAuditEntriesBefore(t.Context(), cutoff, 2); err != nil || n != 2 {
		t.Fatalf("first batch = %d, %v; want 2", n, err)
	}
	if n, err := s.DeleteAuditEntriesBefore(t.Context(), cutoff, 2); err != nil || n != 1 {
		t.Fatalf("second batch = %d, %v; want 1", n, err)
	}
	if n, err := s.DeleteAuditEntriesBefore(t.Context(), cutoff, 2); err != nil || n != 0 {
		t.Fatalf("third batch = %d, %v; want 0", n, err)
	}
	if got := auditIDs(t, s, store.AuditFilter{}); !reflect.DeepEqual(got, []string{"r4", "r3"}) {
		t.Errorf("entries left = %v, want [r4 r3]", got)
	}
	if _, err := s.DeleteAuditEntriesBefore(t.Context(), time.Now(), 0); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("limit 0: %v, want ErrInvalid", err)
	}
}

// testAuditTeamCap: a team's scope team entries beyond its newest keep go,
// oldest first (ties by ID), a batch at a time; scope admin entries are
// neither counted nor deleted; other teams keep theirs. An anonymised
// entry counts and goes like any other.
func testAuditTeamCap(t *testing.T, s store.Store) {
	ctx := t.Context()
	anon := auditEntry("c2", "t1", "capsule.pause", "c", 2)
	anon.Actor = nestbox.AuditActor{Type: nestbox.AuditActorUser, Name: store.AnonymousActor}
	insertAudit(t, s,
		auditEntry("c0", "t1", "capsule.create", "c", 0),
		auditEntry("c1", "t1", "capsule.create", "c", 1),
		anon,
		auditEntry("c3a", "t1", "capsule.destroy", "c", 3),
		auditEntry("c3b", "t1", "capsule.destroy", "c", 3),
		auditEntry("c4", "t1", "key.create", "k", 4),
		auditEntry("c5", "t1", "key.revoke", "k", 5),
		auditEntry("d0", "t2", "capsule.create", "d", 0),
		auditEntry("d1", "t2", "capsule.create", "d", 1),
		auditEntry("p0", "tp", "capsule.create", "p", 0),
		auditEntry("p1", "tp", "capsule.create", "p", 1),
	)
	for i := range 4 {
		e := auditEntry(fmt.Sprintf("adm%d", i), "tp", "user.grant_admin", "u", i)
		e.Scope = nestbox.AuditScopeAdmin
		insertAudit(t, s, e)
	}

	for _, tc := range []struct {
		keep int
		want []string
	}{{3, []string{"t1"}}, {2, []string{"t1"}}, {1, []string{"t1", "t2", "tp"}}, {7, nil}} {
		got, err := s.AuditTeamsOver(ctx, tc.keep)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("AuditTeamsOver(%d) = %v, %v; want %v", tc.keep, got, err, tc.want)
		}
	}

	for i, want := range []int{3, 1, 0} {
		if n, err := s.DeleteAuditEntriesBeyond(ctx, "t1", 3, 3); err != nil || n != want {
			t.Fatalf("batch %d of t1 = %d, %v; want %d", i, n, err, want)
		}
	}
	if got := auditIDs(t, s, store.AuditFilter{TeamID: "t1"}); !slices.Equal(got, []string{"c5", "c4", "c3b"}) {
		t.Errorf("t1 keeps %v, want [c5 c4 c3b]", got)
	}
	if got, err := s.AuditTeamsOver(ctx, 3); err != nil || len(got) != 0 {
		t.Errorf("AuditTeamsOver(3) after the cap = %v, %v; want none", got, err)
	}
	if got := auditIDs(t, s, store.AuditFilter{TeamID: "t2"}); !slices.Equal(got, []string{"d1", "d0"}) {
		t.Errorf("t2 keeps %v, want [d1 d0] (another team's cap is not its)", got)
	}

	// Keep 0 deletes the team's scope team entries, not its admin ones.
	if n, err := s.DeleteAuditEntriesBeyond(ctx, "tp", 0, 100); err != nil || n != 2 {
		t.Errorf("DeleteAuditEntriesBeyond(tp, 0) = %d, %v; want 2", n, err)
	}
	if got := auditIDs(t, s, store.AuditFilter{TeamID: "tp"}); !slices.Equal(got, []string{"adm3", "adm2", "adm1", "adm0"}) {
		t.Errorf("tp keeps %v, want its four admin entries", got)
	}
	if n, err := s.DeleteAuditEntriesBeyond(ctx, "t_nobody", 0, 10); err != nil || n != 0 {
		t.Errorf("an unknown team = %d, %v; want 0", n, err)
	}
	for _, bad := range []struct{ keep, limit int }{{-1, 10}, {3, 0}} {
		if _, err := s.DeleteAuditEntriesBeyond(ctx, "t1", bad.keep, bad.limit); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("keep %d, limit %d: %v, want ErrInvalid", bad.keep, bad.limit, err)
		}
	}
	if _, err := s.AuditTeamsOver(ctx, -1); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("AuditTeamsOver(-1): %v, want ErrInvalid", err)
	}
}
