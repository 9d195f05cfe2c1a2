package account

import (
	"context"
	"errors"
	"fmt"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// Disable deactivates an active account: it can no longer sign in, its
// sessions end, and every API key it made, in any team, is revoked. It
// returns how many keys it revoked. Disabling a disabled account revokes
// what keys are left (a retry after a failure completes the job).
func (s *Service) Disable(ctx context.Context, userID string) (int, error) {
	err := s.store.SetAccountStatus(ctx, userID, store.AccountActive, store.AccountDisabled, s.cfg.Now().UTC())
	if errors.Is(err, errdefs.ErrConflict) {
		_, a, gerr := s.store.GetAccount(ctx, userID)
		if gerr != nil {
			return 0, gerr
		}
		if a.Status != store.AccountDisabled {
			return 0, err
		}
	} else if err != nil {
		return 0, err
	}
	n, err := s.store.DeleteAPIKeysBy(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("disable %s: %w", userID, err)
	}
	return n, nil
}

// Enable reactivates a disabled account. Its revoked keys stay revoked.
func (s *Service) Enable(ctx context.Context, userID string) error {
	return s.store.SetAccountStatus(ctx, userID, store.AccountDisabled, store.AccountActive, s.cfg.Now().UTC())
}
