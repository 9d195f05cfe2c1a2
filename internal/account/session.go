package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// Tokens are what a log-in or a refresh hands out. The tokens are shown
// once; only their hashes are kept.
type Tokens struct {
	Session          store.Session
	AccessToken      string
	RefreshToken     string
	ExpiresAt        time.Time
	RefreshExpiresAt time.Time
}

// errLogin is the one answer to every failed log-in: which part was wrong
// is not said.
var errLogin = errdefs.Unauthenticated("wrong email or password")

// LogIn checks email and password and starts a session for the user's
// first team. An unknown email, a wrong password, an unverified or a
// disabled or deleted account all fail alike (errLogin, or Permission
// for an unverified email once the password is right).
func (s *Service) LogIn(ctx context.Context, email, password string) (Tokens, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return Tokens{}, errLogin
	}
	u, a, err := s.store.AccountByEmail(ctx, email)
	if errors.Is(err, errdefs.ErrNotFound) {
		bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password)) // as long as a real check
		return Tokens{}, errLogin
	}
	if err != nil {
		return Tokens{}, fmt.Errorf("log in: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(a.PasswordHash), []byte(password)) != nil || a.Status != store.AccountActive {
		return Tokens{}, errLogin
	}
	if a.VerifiedAt == nil {
		return Tokens{}, errdefs.Permission("verify your email first: the link was mailed at sign-up (sign up again for a new one)")
	}
	ms, err := s.store.TeamsOfUser(ctx, u.ID)
	if err != nil {
		return Tokens{}, fmt.Errorf("log in %s: %w", u.ID, err)
	}
	if len(ms) == 0 {
		return Tokens{}, errdefs.Permission("the account belongs to no team")
	}
	now := s.cfg.Now().UTC()
	t := s.newTokens(now)
	t.Session.ID = newID("ses_")
	t.Session.UserID = u.ID
	t.Session.TeamID = ms[0].Team.ID
	t.Session.CreatedAt = now
	if err := s.store.CreateSession(ctx, t.Session, s.cfg.MaxSessions); err != nil {
		return Tokens{}, fmt.Errorf("log in %s: %w", u.ID, err)
	}
	return t, nil
}

// newTokens makes a fresh pair of tokens and their expiries.
func (s *Service) newTokens(now time.Time) Tokens {
	var t Tokens
	t.AccessToken, t.Session.TokenHash = newToken(AccessPrefix)
	t.RefreshToken, t.Session.RefreshHash = newToken(RefreshPrefix)
	t.ExpiresAt = now.Add(s.cfg.SessionTTL)
	t.RefreshExpiresAt = now.Add(s.cfg.RefreshTTL)
	t.Session.ExpiresAt, t.Session.RefreshExpiresAt = t.ExpiresAt, t.RefreshExpiresAt
	return t
}

// Refresh trades a refresh token for new tokens of the same session; the
// old pair stops working. A refresh token works once.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	hash, err := ParseToken(refreshToken, RefreshPrefix)
	if err != nil {
		return Tokens{}, err
	}
	now := s.cfg.Now().UTC()
	t := s.newTokens(now)
	sess, err := s.store.RefreshSession(ctx, hash, now, t.Session)
	if errors.Is(err, errdefs.ErrNotFound) {
		return Tokens{}, errdefs.Unauthenticated("invalid or expired refresh token")
	}
	if err != nil {
		return Tokens{}, err
	}
	t.Session = sess
	return t, nil
}

// Authenticate returns the live session of an access token.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (store.Session, error) {
	hash, err := ParseToken(accessToken, AccessPrefix)
	if err != nil {
		return store.Session{}, err
	}
	sess, err := s.store.SessionByToken(ctx, hash, s.cfg.Now().UTC())
	if errors.Is(err, errdefs.ErrNotFound) {
		return store.Session{}, errdefs.Unauthenticated("invalid or expired session")
	}
	return sess, err
}

// LogOut ends a session of its user.
func (s *Service) LogOut(ctx context.Context, sess store.Session) error {
	return s.store.DeleteSession(ctx, sess.UserID, sess.ID)
}
