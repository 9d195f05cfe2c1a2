package store

import (
	"context"
	"time"
)

// TeamAdmin is the part of Store behind the platform admins' team
// actions. Errors wrap the kinds of internal/errdefs like Store's.
type TeamAdmin interface {
	// SetTeamBYOC sets a team's BYOC flag and reports whether it
	// changed; a deleted or unknown team is ErrNotFound.
	SetTeamBYOC(ctx context.Context, teamID string, byoc bool) (changed bool, err error)
	// DeleteTeam soft-deletes a team at at, in one transaction: it sets
	// deleted_at, deletes the team's API keys, the sessions acting for it
	// and its pending invitations. From then on the team is in nobody's
	// TeamsOfUser, MemberRole is ErrNotFound for it and no session can
	// switch to it; GetTeam and ListTeams still show it, with DeletedAt.
	// Deleting a deleted team changes nothing (Changed false) and is no
	// error; an unknown team is ErrNotFound. Its capsules are the
	// caller's to destroy, through the lifecycle service.
	DeleteTeam(ctx context.Context, teamID string, at time.Time) (TeamDeletion, error)
}

// TeamDeletion is what DeleteTeam did.
type TeamDeletion struct {
	// Changed is false when the team was deleted already.
	Changed       bool
	KeysRevoked   int
	SessionsEnded int
}
