// Package storetest is the conformance suite of store.Store. Every
// implementation runs it from its own tests, so that they all behave alike:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... })
//	}
//
// Bench measures the hot paths the same way for every implementation, from
// a benchmark of its own. Only tests import it.
package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/store"
)

// Run runs the suite against the stores newStore makes. Each subtest calls
// newStore once and expects an empty, migrated store that newStore closes
// itself (with t.Cleanup) when the subtest ends.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	for _, tc := range []struct {
		name string
		test func(t *testing.T, s store.Store)
	}{
		{"Users", testUsers},
		{"Teams", testTeams},
		{"APIKeys", testAPIKeys},
		{"JoinTokens", testJoinTokens},
		{"RegisterHost", testRegisterHost},
		{"RegisterRace", testRegisterRace},
		{"HostHeartbeats", testHostHeartbeats},
		{"Leases", testLeases},
		{"TouchCapsules", testTouchCapsules},
		{"CapsuleRoundTrip", testCapsuleRoundTrip},
		{"CapsuleNotFound", testCapsuleNotFound},
		{"CapsuleExpiry", testCapsuleExpiry},
		{"ListFilters", testListFilters},
		{"ListLimit", testListLimit},
		{"ListPages", testListPages},
		{"ListPagesWithInserts", testListPagesWithInserts},
		{"ListStartedAfter", testListStartedAfter},
		{"ListBadCursor", testListBadCursor},
		{"StatusUpdate", testStatusUpdate},
		{"StatusConflict", testStatusConflict},
		{"StatusRace", testStatusRace},
		{"PauseFields", testPauseFields},
		{"GenerationABA", testGenerationABA},
		{"ConcurrentWrites", testConcurrentWrites},
		{"QuotaRace", testQuotaRace},
		{"QuotaLimits", testQuotaLimits},
		{"TeamLimits", testTeamLimits},
		{"SnapshotRoundTrip", testSnapshotRoundTrip},
		{"SnapshotPages", testSnapshotPages},
		{"SnapshotStatus", testSnapshotStatus},
		{"SnapshotQuota", testSnapshotQuota},
		{"SnapshotQuotaRace", testSnapshotQuotaRace},
		{"Accounts", testAccounts},
		{"FirstActivationRace", testFirstActivationRace},
		{"Sessions", testSessions},
		{"Admins", testAdmins},
		{"AdminRevokeRace", testAdminRevokeRace},
		{"ListUsers", testListUsers},
		{"Members", testMembers},
		{"Invitations", testInvitations},
		{"InvitationRace", testInvitationRace},
		{"ListTeams", testListTeams},
		{"OwnedTeamRace", testOwnedTeamRace},
		{"TransferOwnership", testTransferOwnership},
		{"TeamBYOC", testTeamBYOC},
		{"DeleteTeam", testDeleteTeam},
		{"DeleteTeamRace", testDeleteTeamRace},
		{"CountCapsules", testCountCapsules},
		{"AuditRoundTrip", testAuditRoundTrip},
		{"AuditPages", testAuditPages},
		{"AuditFilters", testAuditFilters},
		{"AuditAnonymise", testAuditAnonymise},
		{"AuditRetention", testAuditRetention},
		{"AuditTeamCap", testAuditTeamCap},
		{"UsageRollup", testUsageRollup},
		{"UsageMissedDays", testUsageMissedDays},
		{"UsageRetention", testUsageRetention},
		{"UsageHours", testUsageHours},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, newStore(t)) })
	}
}

// t0 is the suite's epoch. Its times have microsecond precision, the finest
// that every implementation keeps (PostgreSQL's timestamptz).
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)

// at is n minutes after t0.
func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }

func ptr[T any](v T) *T { return &v }

// owner creates a user and a team that user owns.
func owner(t *testing.T, s store.Store, userID, teamID string) (store.User, store.Team) {
	t.Helper()
	u := store.User{ID: userID, Email: userID + "@example.com", Name: "User " + userID, CreatedAt: t0}
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", userID, err)
	}
	tm := store.Team{ID: teamID, Name: "Team " + teamID, CreatedAt: t0}
	if err := s.CreateTeam(t.Context(), tm, userID); err != nil {
		t.Fatalf("CreateTeam(%s): %v", teamID, err)
	}
	return u, tm
}

// capsule is a starting capsule of team created at created, with the
// optional fields left empty.
func capsule(id, team string, created time.Time) store.Capsule {
	return store.Capsule{
		Capsule: nestbox.Capsule{
			ID:        id,
			TeamID:    team,
			Template:  "base",
			Status:    nestbox.StatusStarting,
			VCPUs:     1,
			MemoryMB:  512,
			Internet:  true,
			CreatedAt: created,
		},
		AccessToken: "token-" + id,
		UpdatedAt:   created,
		Generation:  1,
	}
}

// create stores c and fails the test if it cannot.
func create(t *testing.T, s store.Store, c store.Capsule) store.Capsule {
	t.Helper()
	if err := s.CreateCapsule(t.Context(), c); err != nil {
		t.Fatalf("CreateCapsule(%s): %v", c.ID, err)
	}
	return c
}

// get reads capsule id and fails the test if it cannot.
func get(t *testing.T, s store.Store, id string) store.Capsule {
	t.Helper()
	c, err := s.GetCapsule(t.Context(), id)
	if err != nil {
		t.Fatalf("GetCapsule(%s): %v", id, err)
	}
	return c
}

// events reads the events of capsule id and fails the test if it cannot.
func events(t *testing.T, s store.Store, id string) []nestbox.CapsuleEvent {
	t.Helper()
	evs, err := s.CapsuleEvents(t.Context(), id)
	if err != nil {
		t.Fatalf("CapsuleEvents(%s): %v", id, err)
	}
	return evs
}

// listAll walks every page of f and returns the IDs in the order seen and
// the number of pages. between, if not nil, runs after each page but the
// last, with the page's number (0 for the first).
func listAll(ctx context.Context, s store.Store, f store.CapsuleFilter, between func(page int)) (ids []string, pages int, err error) {
	for {
		if pages > 10000 {
			return ids, pages, fmt.Errorf("more than 10000 pages: the cursor does not advance")
		}
		cs, next, err := s.ListCapsules(ctx, f)
		if err != nil {
			return ids, pages, err
		}
		pages++
		for _, c := range cs {
			ids = append(ids, c.ID)
		}
		if next == "" {
			return ids, pages, nil
		}
		if between != nil {
			between(pages - 1)
		}
		f.Cursor = next
	}
}
