package store

import (
	"context"
	"time"

	"nestbox.dev"
)

// Audit is the part of Store behind the audit log (internal/audit writes
// and reads it). Errors wrap the kinds of internal/errdefs like Store's.
type Audit interface {
	// InsertAuditEntry stores e as it is; its ID must be new
	// (ErrAlreadyExists otherwise).
	InsertAuditEntry(ctx context.Context, e nestbox.AuditEntry) error
	// ListAuditEntries returns a page of the entries f selects, newest
	// first (by time, then ID, both descending), and the cursor of the
	// next page ("" on the last). The cursor is the (time, ID) of the
	// page's last entry, so entries inserted between two pages never
	// shift or repeat the next one. A cursor ListAuditEntries did not
	// make, an Action without a ResourceType or outside it, or a negative
	// limit is ErrInvalid.
	ListAuditEntries(ctx context.Context, f AuditFilter) ([]nestbox.AuditEntry, string, error)
	// AnonymiseAuditEntries removes a user from the audit log, in one
	// transaction: where the user is the actor, the actor's ID is cleared
	// and its name becomes AnonymousActor; where it is the resource, the
	// resource ID is cleared; and metadata loses every value that holds
	// the user's email (any key) and, in the entries about the user, the
	// key "email". It returns how many entries changed. The user must
	// still exist (its email is read from it): an unknown one is
	// ErrNotFound, and nothing changes.
	AnonymiseAuditEntries(ctx context.Context, userID string) (int, error)
	// DeleteAuditEntriesBefore deletes at most limit of the oldest entries
	// older than before and returns how many it deleted.
	DeleteAuditEntriesBefore(ctx context.Context, before time.Time, limit int) (int, error)
	// AuditTeamsOver returns the teams (by ID, in order) that have more
	// than keep entries of scope team. Scope admin entries are not
	// counted: they follow the retention only.
	AuditTeamsOver(ctx context.Context, keep int) ([]string, error)
	// DeleteAuditEntriesBeyond deletes at most limit of a team's oldest
	// scope team entries, never any of its keep newest ones (by time, then
	// ID), and returns how many it deleted. keep below 0 or limit below 1
	// is ErrInvalid.
	DeleteAuditEntriesBeyond(ctx context.Context, teamID string, keep, limit int) (int, error)
}

// AnonymousActor is the actor name of the entries of a purged user.
const AnonymousActor = "deleted-user"

// AuditFilter selects audit entries. Empty fields select all.
type AuditFilter struct {
	TeamID string
	Scope  nestbox.AuditScope
	// ResourceType keeps entries about one type of resource; Action, only
	// with it, one action of that type ("capsule.pause").
	ResourceType string
	Action       string
	// ActorID keeps entries whose actor has this ID.
	ActorID string
	// From keeps entries at or after it, To entries before it.
	From, To time.Time
	// Limit is the page size; zero means 100, and at most 1000 are
	// returned.
	Limit  int
	Cursor string
}
