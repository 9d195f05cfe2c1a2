package account

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// RequestReset mails a password-reset link to email if it has an active,
// verified account; otherwise it does nothing. Its answer is the same
// either way.
func (s *Service) RequestReset(ctx context.Context, email string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	u, a, err := s.store.AccountByEmail(ctx, email)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("request reset: %w", err)
	}
	if a.Status != store.AccountActive || a.VerifiedAt == nil {
		return nil
	}
	tok := SignLink(s.cfg.LinkKey, Link{Purpose: PurposeReset, Subject: u.ID, Expires: s.cfg.Now().Add(s.cfg.ResetTTL), Version: a.PasswordVersion})
	return s.send(ctx, resetMail(u.Email, s.cfg.PublicURL, tok, s.cfg.ResetTTL))
}

// ResetPassword sets a new password with a reset link. The link works
// once (it names the password version it replaces) and the change ends
// every session of the user.
func (s *Service) ResetPassword(ctx context.Context, token, password string) error {
	l, err := ParseLink(s.cfg.LinkKey, token, PurposeReset, s.cfg.Now())
	if err != nil {
		return err
	}
	if err := checkPassword(password); err != nil {
		return err
	}
	_, a, err := s.store.GetAccount(ctx, l.Subject)
	if errors.Is(err, errdefs.ErrNotFound) {
		return errdefs.Invalid("link token: the account is gone")
	}
	if err != nil {
		return err
	}
	if a.Status != store.AccountActive || a.PasswordVersion != l.Version {
		return errdefs.Invalid("link token: already used")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cfg.BcryptCost)
	if err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	err = s.store.SetPassword(ctx, l.Subject, string(hash), l.Version)
	if errors.Is(err, errdefs.ErrConflict) {
		return errdefs.Invalid("link token: already used")
	}
	return err
}

// ChangePassword replaces the password of a signed-in user who knows the
// current one. Every session of the user ends, the one asking too.
func (s *Service) ChangePassword(ctx context.Context, userID, current, next string) error {
	if err := checkPassword(next); err != nil {
		return err
	}
	_, a, err := s.store.GetAccount(ctx, userID)
	if err != nil {
		return err
	}
	if bcrypt.CompareHashAndPassword([]byte(a.PasswordHash), []byte(current)) != nil {
		return errdefs.Permission("the current password is wrong")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(next), s.cfg.BcryptCost)
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	err = s.store.SetPassword(ctx, userID, string(hash), a.PasswordVersion)
	if errors.Is(err, errdefs.ErrConflict) {
		return errdefs.Conflict("the password changed meanwhile; log in again")
	}
	return err
}
