package store

import (
	"context"
	"time"
)

// Teams is the part of Store behind team membership: members and their
// roles, invitations, a team's settings, and which team a session acts
// for. Errors wrap the kinds of internal/errdefs like Store's.
type Teams interface {
	// CreateOwnedTeam is CreateTeam under a limit: it refuses, with
	// ErrExhausted and nothing created, if owner already owns max teams
	// (max > 0). Concurrent calls for one owner are serialised.
	CreateOwnedTeam(ctx context.Context, t Team, owner string, max int) error
	// Members lists a team's members, owner first, then by user ID.
	Members(ctx context.Context, teamID string) ([]Member, error)
	// MemberRole is a user's role in a team; a non-member is ErrNotFound.
	MemberRole(ctx context.Context, teamID, userID string) (Role, error)
	// SetMemberRole changes a member's role to admin or member. The
	// owner's role cannot change (ErrConflict), nor can anyone become
	// owner (ErrInvalid).
	SetMemberRole(ctx context.Context, teamID, userID string, role Role) error
	// RemoveMember removes a member and ends the user's sessions that act
	// for the team, in one transaction. The owner cannot be removed
	// (ErrConflict).
	RemoveMember(ctx context.Context, teamID, userID string) error

	// TransferOwnership makes member to the owner of a team and its
	// owner from an admin, in one transaction. from must be the owner
	// (else ErrConflict) and to a member (else ErrNotFound).
	TransferOwnership(ctx context.Context, teamID, from, to string) error

	// TeamPolicy returns a team's settings; a team without any gets the
	// zero TeamPolicy.
	TeamPolicy(ctx context.Context, teamID string) (TeamPolicy, error)
	// SetTeamPolicy replaces a team's settings; an unknown team is
	// ErrNotFound.
	SetTeamPolicy(ctx context.Context, teamID string, p TeamPolicy) error

	// CreateInvitation inserts inv unless its team has maxPending
	// invitations pending at now (ErrExhausted); concurrent calls for one
	// team are serialised.
	CreateInvitation(ctx context.Context, inv Invitation, maxPending int, now time.Time) error
	GetInvitation(ctx context.Context, id string) (Invitation, error)
	// ListInvitations lists a team's invitations pending at now, oldest
	// first.
	ListInvitations(ctx context.Context, teamID string, now time.Time) ([]Invitation, error)
	// DeleteInvitation withdraws an invitation of a team; another team's
	// is not found.
	DeleteInvitation(ctx context.Context, teamID, id string) error
	// AcceptInvitation marks a pending invitation accepted by userID and
	// adds the user to its team with its role, in one transaction:
	// compare-and-set, so an invitation is accepted once. An accepted or
	// expired one is ErrConflict, a user already a member
	// ErrAlreadyExists, a team of maxMembers members ErrExhausted.
	AcceptInvitation(ctx context.Context, id, userID string, now time.Time, maxMembers int) (Invitation, error)

	// ListTeams lists, by ID, at most limit teams whose ID is after after
	// ("" from the start), each with its owner's user ID and its number
	// of members. A limit outside 1 to 1000 is 1000.
	ListTeams(ctx context.Context, after string, limit int) ([]TeamSummary, error)

	// SetSessionTeam makes a user's session act for another team the
	// user belongs to; a team it does not belong to is ErrNotFound.
	SetSessionTeam(ctx context.Context, userID, sessionID, teamID string) error
}

// Member is a user in a team.
type Member struct {
	User User
	Role Role
}

// TeamSummary is a team as the platform's admins list it.
type TeamSummary struct {
	Team    Team
	OwnerID string // "" if the owner was purged
	Members int
}

// TeamPolicy is what a team's owner and admins decide for it.
type TeamPolicy struct {
	// MembersMintKeys lets members (not only the owner and admins) make
	// API keys.
	MembersMintKeys bool
}

// Invitation asks the account of Email to join TeamID with Role.
type Invitation struct {
	ID         string
	TeamID     string
	Email      string
	Role       Role
	InvitedBy  string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	AcceptedAt *time.Time
	AcceptedBy string
}
