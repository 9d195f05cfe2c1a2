// Package store is the control plane's durable state: users, teams, API keys,
// hosts, capsules and snapshots. Store is a contract with one conformance suite
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
	Accounts
	Teams
	TeamAdmin
	Audit
	Metering

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

	// The hosts of a fleet (hosts.go of sqlstore). A one-machine
	// platform's host is configured, not stored.
	//
	// CreateJoinToken stores a join token, refusing (ErrExhausted,
	// nothing stored) when max unexpired tokens exist already.
	CreateJoinToken(ctx context.Context, t JoinToken, max int, now time.Time) error
	// ListJoinTokens lists the tokens that have not expired and have uses
	// left at now, oldest first.
	ListJoinTokens(ctx context.Context, now time.Time) ([]JoinToken, error)
	// DeleteJoinToken revokes a token; an unknown ID is ErrNotFound.
	DeleteJoinToken(ctx context.Context, id string) error
	// RegisterHost inserts h in the transaction that takes one use of the
	// join token whose secret hashes to tokenHash; a token that does not
	// exist, has expired or has no use left is ErrUnauthenticated and
	// nothing is inserted. An ID in use is ErrAlreadyExists.
	RegisterHost(ctx context.Context, h Host, tokenHash string, now time.Time) error
	// HeartbeatHost records a host's heartbeat: its address, capacity and
	// the time, and makes it reachable. It reports whether the host was
	// unreachable before. An unknown ID is ErrNotFound.
	HeartbeatHost(ctx context.Context, id, address string, c HostCapacity, at time.Time) (wasUnreachable bool, err error)
	// MarkHostsUnreachable makes the reachable hosts last seen before
	// seenBefore unreachable, and returns their IDs: a compare-and-set, so
	// of concurrent callers one reports each host.
	MarkHostsUnreachable(ctx context.Context, seenBefore time.Time) ([]string, error)
	// SetHostState sets a host's scheduling state; an unknown ID is
	// ErrNotFound.
	SetHostState(ctx context.Context, id string, st HostState) error
	// DeleteHost removes a host's row; an unknown ID is ErrNotFound.
	DeleteHost(ctx context.Context, id string) error
	GetHost(ctx context.Context, id string) (Host, error)
	ListHosts(ctx context.Context) ([]Host, error)
	// TouchCapsules sets UpdatedAt to at for the capsules of ids that are
	// in one of statuses (the transient ones a control plane is driving):
	// the sign, to the other control planes' reconcilers, that the work
	// is alive. Unknown IDs and other statuses are left alone.
	TouchCapsules(ctx context.Context, ids []string, statuses []nestbox.Status, at time.Time) error
	// AcquireLease makes holder the holder of the named lease until
	// until, if the lease is free (never taken, or expired at now) or
	// holder's already; it reports whether holder holds it. Work that must
	// run once among several control planes runs under a lease.
	AcquireLease(ctx context.Context, name, holder string, until, now time.Time) (bool, error)

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

	// CreateSnapshotWithin inserts a snapshot under a quota: in the same
	// transaction, serialised per team as CreateCapsuleWithin is, it
	// counts the team's snapshots and its disk (live capsules' disk_mb and
	// every snapshot's size) and refuses, with ErrExhausted and nothing
	// inserted, if adding sn would pass a limit (the team's own, else
	// q's). A name the team already has is ErrAlreadyExists, an unknown
	// team ErrNotFound.
	CreateSnapshotWithin(ctx context.Context, sn Snapshot, q Quota) error
	// GetSnapshot returns a snapshot by ID, whatever its team.
	GetSnapshot(ctx context.Context, id string) (Snapshot, error)
	// ListSnapshots returns a page of snapshots, newest first, and the
	// cursor of the next page ("" when there is none).
	ListSnapshots(ctx context.Context, f SnapshotFilter) ([]Snapshot, string, error)
	// UpdateSnapshot moves a snapshot from one of the statuses in from to
	// u.To, applying u's other fields, as a compare-and-set: a snapshot in
	// another status is ErrConflict, returned with the snapshot as it is.
	// A change to SnapshotDeleting is ErrConflict too while the snapshot
	// backs a template (TemplateName), so that a template never loses its
	// snapshot.
	UpdateSnapshot(ctx context.Context, id string, from []nestbox.SnapshotStatus, u SnapshotUpdate) (Snapshot, error)
	// SetSnapshotTemplate makes a ready snapshot back the template name of
	// its team, or, name empty, no template. A snapshot that is not ready
	// is ErrConflict (when name is set), a name another snapshot of the
	// team backs ErrAlreadyExists, an unknown ID ErrNotFound.
	SetSnapshotTemplate(ctx context.Context, id, name string) error
	// SetSnapshotPool sets the pool size of a ready snapshot that backs a
	// template (else errdefs.ErrConflict), refusing with
	// errdefs.ErrExhausted when the team's pools would hold more than max
	// sandboxes together (0: no cap). Unsetting the template clears it.
	SetSnapshotPool(ctx context.Context, id string, size, max int) error
	// DeleteSnapshot removes a snapshot's row. It is ErrConflict while the
	// snapshot backs a template, ErrNotFound if there is no such row.
	DeleteSnapshot(ctx context.Context, id string) error

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
	// BYOC is set by a platform admin: the team may bring its own hosts
	// (a flag only for now, docs/admin.md). DeletedAt is when an admin
	// deleted the team (TeamAdmin.DeleteTeam); nil while it lives.
	BYOC      bool
	DeletedAt *time.Time
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

// Host is a machine of a fleet, with its host agent.
type Host struct {
	ID   string
	Name string
	// Address is the agent's base URL, e.g. http://10.0.0.5:5007.
	Address string
	// AgentToken is the secret the agent requires of the control plane,
	// issued at registration. A secret: never in an API answer or a log.
	AgentToken string
	State      HostState
	// Unreachable is set by the host monitor when heartbeats stopped, and
	// cleared by the next heartbeat.
	Unreachable bool
	Capacity    HostCapacity
	LastSeen    time.Time
	Created     time.Time
}

// HostState is a host's scheduling state, set by an operator.
type HostState string

const (
	// HostActive hosts take new capsules.
	HostActive HostState = "active"
	// HostCordoned hosts take no new capsules; theirs run on.
	HostCordoned HostState = "cordoned"
	// HostDraining hosts take no new capsules and wait for theirs to end;
	// nothing is paused or moved.
	HostDraining HostState = "draining"
)

// Valid reports whether st is one of the states.
func (st HostState) Valid() bool {
	return st == HostActive || st == HostCordoned || st == HostDraining
}

// HostCapacity is what a host reported in its last heartbeat.
type HostCapacity struct {
	Version              string   `json:"version,omitempty"`
	Driver               string   `json:"driver,omitempty"`
	CPUs                 uint32   `json:"cpus,omitempty"`
	MemoryTotalBytes     uint64   `json:"memory_total_bytes,omitempty"`
	MemoryAvailableBytes uint64   `json:"memory_available_bytes,omitempty"`
	MemoryReservedBytes  uint64   `json:"memory_reserved_bytes,omitempty"`
	MemoryAllocatedBytes uint64   `json:"memory_allocated_bytes,omitempty"`
	MemoryCommitLimit    uint64   `json:"memory_commit_limit_bytes,omitempty"`
	DiskTotalBytes       uint64   `json:"disk_total_bytes,omitempty"`
	DiskAvailableBytes   uint64   `json:"disk_available_bytes,omitempty"`
	DiskReservedBytes    uint64   `json:"disk_reserved_bytes,omitempty"`
	DiskAllocatedBytes   uint64   `json:"disk_allocated_bytes,omitempty"`
	Sandboxes            uint32   `json:"sandboxes,omitempty"`
	MaxSandboxes         uint32   `json:"max_sandboxes,omitempty"`
	VCPUsAllocated       uint32   `json:"vcpus_allocated,omitempty"`
	Running              uint32   `json:"running,omitempty"`
	Paused               uint32   `json:"paused,omitempty"`
	Templates            []string `json:"templates,omitempty"` // built on the host
	Snapshots            []string `json:"snapshots,omitempty"` // kept on the host
	Pooled               []string `json:"pooled,omitempty"`    // templates with a warm-pool sandbox ready
}

// JoinToken lets a host agent register once per use. Only the hash of its
// secret is stored.
type JoinToken struct {
	ID        string
	Hash      string
	CreatedBy string // user ID, may be empty
	Created   time.Time
	Expires   time.Time
	UsesLeft  int
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

// Quota is what a team may hold at once: how many live capsules, their
// vCPUs and their memory in total, how many snapshots, and how much disk
// its live capsules and snapshots take together. A zero field is no
// limit.
type Quota struct {
	Capsules  int
	VCPUs     int
	MemoryMB  int
	Snapshots int
	DiskMB    int
}

// TeamLimits are a team's own limits, which override the operator's default
// Quota field by field. A nil field means the default; a pointer to zero
// means no limit.
type TeamLimits struct {
	Capsules  *int
	VCPUs     *int
	MemoryMB  *int
	Snapshots *int
	DiskMB    *int
}

// Apply returns q with l's set fields in place of q's.
func (l TeamLimits) Apply(q Quota) Quota {
	for _, f := range []struct {
		dst *int
		src *int
	}{{&q.Capsules, l.Capsules}, {&q.VCPUs, l.VCPUs}, {&q.MemoryMB, l.MemoryMB}, {&q.Snapshots, l.Snapshots}, {&q.DiskMB, l.DiskMB}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	return q
}

// Usage is what a team holds: its live capsules (every status but stopped
// and error), their vCPUs and memory, its snapshots, and the disk of both
// (capsules' DiskMB plus snapshots' SnapshotDiskMB).
type Usage struct {
	Capsules  int
	VCPUs     int
	MemoryMB  int
	Snapshots int
	DiskMB    int
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
	case q.DiskMB > 0 && u.DiskMB+c.DiskMB > q.DiskMB:
		return fmt.Errorf("team %s: %d MB more disk would pass its limit of %d MB (%d MB in use by capsules and snapshots): %w", teamID, c.DiskMB, q.DiskMB, u.DiskMB, errdefs.ErrExhausted)
	}
	return nil
}

// AdmitSnapshot is Admit for one more snapshot sn.
func (q Quota) AdmitSnapshot(teamID string, u Usage, sn Snapshot) error {
	switch {
	case q.Snapshots > 0 && u.Snapshots+1 > q.Snapshots:
		return fmt.Errorf("team %s has %d snapshots, its limit: %w", teamID, u.Snapshots, errdefs.ErrExhausted)
	case q.DiskMB > 0 && u.DiskMB+SnapshotDiskMB(sn.SizeBytes) > q.DiskMB:
		return fmt.Errorf("team %s: a snapshot of up to %d MB would pass its disk limit of %d MB (%d MB in use by capsules and snapshots): %w", teamID, SnapshotDiskMB(sn.SizeBytes), q.DiskMB, u.DiskMB, errdefs.ErrExhausted)
	}
	return nil
}

// SnapshotDiskMB is the disk a snapshot of size bytes counts for: whole
// MiB, rounded up.
func SnapshotDiskMB(size int64) int { return int((size + 1<<20 - 1) >> 20) }

// Snapshot is a snapshot's row. EnvVars, a secret the API never shows,
// are the source capsule's: a capsule started from the snapshot keeps
// them for a later boot from disk, as any capsule does.
type Snapshot struct {
	nestbox.Snapshot
	EnvVars   map[string]string
	UpdatedAt time.Time
	// PoolSize is the warm pool of the template it backs: how many
	// sandboxes restored from it its host keeps ready.
	PoolSize int
}

// SnapshotUpdate is the change UpdateSnapshot applies. Zero fields are
// left as they are.
type SnapshotUpdate struct {
	To          nestbox.SnapshotStatus
	Error       string
	SizeBytes   int64
	DiskMB      int
	EnvdVersion string
	At          time.Time // when it happened; zero means now
}

// SnapshotFilter selects snapshots for ListSnapshots. Empty fields select
// all.
type SnapshotFilter struct {
	TeamID       string
	CapsuleID    string
	HostID       string
	Name         string // the full "name:tag"
	TemplateName string
	Statuses     []nestbox.SnapshotStatus
	// Limit is the page size; zero means 100, and at most 1000 are
	// returned.
	Limit  int
	Cursor string
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
