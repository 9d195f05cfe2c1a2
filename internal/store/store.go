// Package store is the control plane's durable state: users, teams, API keys,
// hosts and capsules. Store is a contract with one conformance suite
// (storetest) that every implementation runs: SQLite (internal/store/sqlite,
// the embedded default) and PostgreSQL (internal/store/postgres, for
// fleets), whose SQL is written once in internal/store/sqlstore. Only the
// control plane imports it.
//
// Every capsule status change goes through UpdateCapsuleStatus, a
// compare-and-set: concurrent API calls, background goroutines and the
// reconciler can never overwrite each other's work.
package store

import (
	"context"
	"fmt"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
)

// Store is the control plane's database. Implementations are safe for
// concurrent use. Errors wrap the kinds of internal/errdefs: ErrNotFound for
// a missing row, ErrAlreadyExists for a duplicate key or unique value,
// ErrConflict for a failed compare-and-set.
type Store interface {
	CreateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, id string) (User, error)
	// CreateTeam creates a team and makes owner its owner, in one
	// transaction.
	CreateTeam(ctx context.Context, t Team, owner string) error
	GetTeam(ctx context.Context, id string) (Team, error)
	// TeamsOfUser lists the teams a user belongs to, oldest first.
	TeamsOfUser(ctx context.Context, userID string) ([]Membership, error)

	CreateAPIKey(ctx context.Context, k APIKey) error
	// APIKeyByHash finds a key by the hash of its secret; revoked keys
	// are not found.
	APIKeyByHash(ctx context.Context, hash string) (APIKey, error)
	// ListAPIKeys lists a team's keys, oldest first.
	ListAPIKeys(ctx context.Context, teamID string) ([]APIKey, error)
	// DeleteAPIKey revokes a key of a team; a key of another team is not
	// found.
	DeleteAPIKey(ctx context.Context, teamID, id string) error
	// TouchAPIKey records that a key was used at t.
	TouchAPIKey(ctx context.Context, id string, t time.Time) error

	// UpsertHost registers a host or updates its address and heartbeat.
	UpsertHost(ctx context.Context, h Host) error
	GetHost(ctx context.Context, id string) (Host, error)
	ListHosts(ctx context.Context) ([]Host, error)

	// CreateCapsule inserts a capsule and its first event (empty From).
	CreateCapsule(ctx context.Context, c Capsule) error
	// CreateCapsuleWithin is CreateCapsule under a quota: in the same
	// transaction it counts the team's live capsules (every status but
	// stopped and error) and refuses, with an error of kind ErrExhausted
	// and nothing inserted, if adding c would pass a limit. The limits
	// are the team's own (TeamLimits) where set, else q's. Concurrent
	// calls for one team are serialised, so the limit holds under any
	// interleaving.
	CreateCapsuleWithin(ctx context.Context, c Capsule, q Quota) error
	// TeamLimits returns a team's own limits; a team that has none set
	// gets the zero TeamLimits (every field nil).
	TeamLimits(ctx context.Context, teamID string) (TeamLimits, error)
	// SetTeamLimits replaces a team's own limits; an unknown team is
	// ErrNotFound.
	SetTeamLimits(ctx context.Context, teamID string, l TeamLimits) error
	GetCapsule(ctx context.Context, id string) (Capsule, error)
	// ListCapsules returns a page of capsules, newest first (or oldest
	// first, f.Oldest), and the cursor of the next page ("" when there is
	// none).
	ListCapsules(ctx context.Context, f CapsuleFilter) ([]Capsule, string, error)
	// UpdateCapsuleStatus moves a capsule from one of the statuses in from
	// (and, if u.Generation is set, from that generation) to u.To,
	// applying u's other fields and adding one to its Generation, and
	// records the change as an event, in one transaction. If the capsule's
	// status is not in from, or its generation is not u.Generation, it
	// changes nothing and returns an error of kind ErrConflict together
	// with the capsule as it is; an unknown ID is ErrNotFound.
	UpdateCapsuleStatus(ctx context.Context, id string, from []nestbox.Status, u StatusUpdate) (Capsule, error)
	// SetCapsuleExpiry sets when a capsule expires, whatever its status.
	SetCapsuleExpiry(ctx context.Context, id string, t time.Time) error
	// CapsuleEvents lists a capsule's status changes, oldest first.
	CapsuleEvents(ctx context.Context, id string) ([]nestbox.CapsuleEvent, error)
	// CountCapsules counts the capsules in each of statuses, by host and
	// status: one row per pair that has any (none for a count of zero),
	// in no particular order. It reads an index, not the rows: the
	// metrics collector calls it at every scrape.
	CountCapsules(ctx context.Context, statuses []nestbox.Status) ([]CapsuleCount, error)

	Close() error
}

// User is a person who signs in (or the admin made by the first start).
type User struct {
	ID        string
	Email     string
	Name      string
	Admin     bool
	CreatedAt time.Time
}

// Team owns capsules and API keys.
type Team struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Role is a user's role in a team.
type Role string

// The roles of a team's members.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Membership is a user's place in a team.
type Membership struct {
	Team Team
	Role Role
}

// APIKey is a team's key; Hash is the SHA-256 of the secret, hex-encoded.
// The secret itself is never stored.
type APIKey struct {
	ID         string
	TeamID     string
	Name       string
	Prefix     string
	Hash       string
	CreatedBy  string // user ID, may be empty
	CreatedAt  time.Time
	LastUsedAt *time.Time
}

// CapsuleCount is how many capsules of one host are in one status.
type CapsuleCount struct {
	HostID string
	Status nestbox.Status
	Count  int
}

// Host is a machine with a host agent.
type Host struct {
	ID string
	// Address is the agent's base URL, e.g. http://10.0.0.5:5007.
	Address  string
	LastSeen time.Time
	Created  time.Time
}

// Capsule is a capsule's row. Secrets that the API never shows (the envd
// access token, environment variables) are stored beside the public view.
type Capsule struct {
	nestbox.Capsule
	EnvVars     map[string]string
	AccessToken string
	// UpdatedAt is when the status last changed: the reconciler uses it to
	// find capsules stuck in a transient status.
	UpdatedAt time.Time
	// Generation counts the capsule's status changes: 1 at creation, one
	// more at each UpdateCapsuleStatus. A change made from a generation
	// that is no longer current is refused (StatusUpdate.Generation).
	Generation int64
	// PausedMemory is whether the last pause kept the memory; Remaining
	// is the lifetime the capsule had left then, frozen while it is
	// paused.
	PausedMemory bool
	Remaining    time.Duration
}

// StatusUpdate is the change UpdateCapsuleStatus applies. Zero fields are
// left as they are.
type StatusUpdate struct {
	To          nestbox.Status
	Reason      string // recorded in the event; also Capsule.Error when To is StatusError
	HostID      string
	EnvdVersion string
	// DiskMB is the disk size the host gave the capsule (its default
	// resolved), set when it starts.
	DiskMB    int
	StartedAt time.Time
	ExpiresAt time.Time
	StoppedAt time.Time
	At        time.Time // when it happened; zero means now
	// Generation, if not zero, is the generation the change is made
	// from: the capsule must be at it as well as in a from status, else
	// the update is ErrConflict. Zero checks the status alone.
	Generation int64
	// Pause, if not nil, records a pause: Capsule.PausedAt, PausedMemory
	// and Remaining.
	Pause *Pause
}

// Pause is what a change to paused records.
type Pause struct {
	At        time.Time
	Memory    bool
	Remaining time.Duration
}

// Quota is what a team may hold at once in live capsules: how many, their
// vCPUs and their memory in total. A zero field is no limit.
type Quota struct {
	Capsules int
	VCPUs    int
	MemoryMB int
}

// TeamLimits are a team's own limits, which override the operator's default
// Quota field by field. A nil field means the default; a pointer to zero
// means no limit.
type TeamLimits struct {
	Capsules *int
	VCPUs    *int
	MemoryMB *int
}

// Apply returns q with l's set fields in place of q's.
func (l TeamLimits) Apply(q Quota) Quota {
	for _, f := range []struct {
		dst *int
		src *int
	}{{&q.Capsules, l.Capsules}, {&q.VCPUs, l.VCPUs}, {&q.MemoryMB, l.MemoryMB}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	return q
}

// Usage is what a team's live capsules hold.
type Usage struct {
	Capsules int
	VCPUs    int
	MemoryMB int
}

// Admit reports, as an error of kind ErrExhausted naming the limit, whether
// one more capsule c on top of u would pass a limit of q. Both stores call
// it inside their create transaction.
func (q Quota) Admit(teamID string, u Usage, c Capsule) error {
	switch {
	case q.Capsules > 0 && u.Capsules+1 > q.Capsules:
		return fmt.Errorf("team %s has %d live capsules, its limit: %w", teamID, u.Capsules, errdefs.ErrExhausted)
	case q.VCPUs > 0 && u.VCPUs+c.VCPUs > q.VCPUs:
		return fmt.Errorf("team %s: %d more vCPUs would pass its limit of %d (%d in use): %w", teamID, c.VCPUs, q.VCPUs, u.VCPUs, errdefs.ErrExhausted)
	case q.MemoryMB > 0 && u.MemoryMB+c.MemoryMB > q.MemoryMB:
		return fmt.Errorf("team %s: %d MB more memory would pass its limit of %d MB (%d MB in use): %w", teamID, c.MemoryMB, q.MemoryMB, u.MemoryMB, errdefs.ErrExhausted)
	}
	return nil
}

// CapsuleFilter selects capsules for ListCapsules.
type CapsuleFilter struct {
	// TeamID restricts the list to one team; empty lists all teams (for
	// the reconciler).
	TeamID string
	// Statuses keeps capsules in any of these statuses; empty keeps all.
	Statuses []nestbox.Status
	// Metadata keeps capsules whose metadata has every one of these
	// key/value pairs.
	Metadata map[string]string
	// HostID keeps capsules placed on this host.
	HostID string
	// Template keeps capsules of this template.
	Template string
	// StartedAfter keeps capsules that started at or after it; a capsule
	// that has not started yet counts as started when it was created (the
	// time the APIs report as its start). Zero keeps all.
	StartedAfter time.Time
	// Oldest lists oldest first instead of newest first. A cursor belongs
	// to the order that made it.
	Oldest bool
	// Limit is the page size; zero means 100, and at most 1000 are
	// returned.
	Limit int
	// Cursor is a NextCursor returned by an earlier call.
	Cursor string
}
