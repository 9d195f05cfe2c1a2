package store

import (
	"context"
	"time"
)

// Accounts is the part of Store behind sign-in: accounts (a user's
// password and status), sessions and platform admins. Errors wrap the
// kinds of internal/errdefs like Store's.
type Accounts interface {
	// CreateAccount inserts the user u and its account a in one
	// transaction. A taken email is ErrAlreadyExists.
	CreateAccount(ctx context.Context, u User, a Account) error
	// AccountByEmail finds the account of an email (as stored: callers
	// normalise it); a user without an account is not found.
	AccountByEmail(ctx context.Context, email string) (User, Account, error)
	// GetAccount returns a user and its account.
	GetAccount(ctx context.Context, userID string) (User, Account, error)
	// ActivateAccount marks an unverified account verified, creates the
	// team t owned by the user, and, if no account activated before on
	// this installation, makes the user platform admin, all in one
	// transaction. It reports whether the user became admin. An account
	// already verified, or not active, is ErrConflict.
	ActivateAccount(ctx context.Context, userID string, t Team, at time.Time) (admin bool, err error)
	// SetAccountStatus moves an account from status from to status to
	// (compare-and-set: another status is ErrConflict). To deleted
	// records at as the deletion time, any other status clears it; any
	// status but active also ends the user's sessions.
	SetAccountStatus(ctx context.Context, userID string, from, to AccountStatus, at time.Time) error
	// SetPassword replaces the password hash if the account's password
	// is still at version (else ErrConflict), adds one to the version and
	// ends every session of the user, in one transaction.
	SetPassword(ctx context.Context, userID, hash string, version int64) error
	// DeleteAPIKeysBy revokes every API key made by userID, in any team,
	// and returns how many.
	DeleteAPIKeysBy(ctx context.Context, userID string) (int, error)
	// ListUsers lists, by ID, at most limit users whose ID is after
	// after ("" from the start), with their accounts but never the
	// password hash (Account is zero for a user without one). A limit
	// outside 1 to 1000 is 1000.
	ListUsers(ctx context.Context, after string, limit int) ([]UserAccount, error)
	// DeletedAccounts lists, oldest deletion first, at most limit users
	// whose accounts were deleted before t.
	DeletedAccounts(ctx context.Context, before time.Time, limit int) ([]string, error)
	// PurgeUser deletes a user whose account was deleted before t, with
	// its account, sessions and memberships. A user not (or no longer)
	// in that state is ErrConflict, an unknown one ErrNotFound.
	PurgeUser(ctx context.Context, userID string, before time.Time) error

	// CreateSession inserts s and ends the user's oldest sessions beyond
	// max (max > 0), in one transaction.
	CreateSession(ctx context.Context, s Session, max int) error
	// SessionByToken finds the session whose access token hashes to
	// hash and has not expired at now.
	SessionByToken(ctx context.Context, hash string, now time.Time) (Session, error)
	// RefreshSession replaces the tokens and expiries of the session
	// whose refresh token hashes to refreshHash, if that has not expired
	// at now, with next's (its ID, user, team and creation are kept):
	// compare-and-set on the refresh hash, so a refresh token works once.
	// It returns the session as it now is.
	RefreshSession(ctx context.Context, refreshHash string, now time.Time, next Session) (Session, error)
	// DeleteSession ends a session of a user; another user's is not
	// found.
	DeleteSession(ctx context.Context, userID, id string) error

	// SetAdmin grants (admin true) or revokes platform admin and reports
	// whether it changed anything: granting an admin or revoking a
	// non-admin changes nothing. Revoking is one conditional statement
	// that refuses, with ErrConflict, to remove the last admin, whatever
	// other revokes run at the same time.
	SetAdmin(ctx context.Context, userID string, admin bool) (changed bool, err error)
}

// UserAccount is a user and its account, if any.
type UserAccount struct {
	User    User
	Account Account
}

// AccountStatus is whether an account may sign in.
type AccountStatus string

// The statuses of an account. A deleted account is restorable until it is
// purged.
const (
	AccountActive   AccountStatus = "active"
	AccountDisabled AccountStatus = "disabled"
	AccountDeleted  AccountStatus = "deleted"
)

// Account is how a user signs in. PasswordHash is a bcrypt hash; the
// password itself is never stored.
type Account struct {
	UserID          string
	PasswordHash    string
	PasswordVersion int64
	Status          AccountStatus
	// VerifiedAt is when the email was verified; nil: not yet, and the
	// account cannot sign in.
	VerifiedAt *time.Time
	DeletedAt  *time.Time
	CreatedAt  time.Time
}

// Session is a signed-in user acting for one team. Its tokens are kept as
// SHA-256 hashes, hex-encoded; the tokens themselves are never stored.
type Session struct {
	ID               string
	UserID           string
	TeamID           string
	TokenHash        string
	RefreshHash      string
	ExpiresAt        time.Time
	RefreshExpiresAt time.Time
	CreatedAt        time.Time
}
