package account

import (
	"context"
	"fmt"
	"time"

	"nestbox.dev/internal/store"
)

// Delete soft-deletes a user's account: its sessions end, the API keys it
// made are revoked (a restore does not bring them back), it can no longer
// sign in, and it is purged after the grace period unless restored. It
// returns when the purge may happen.
func (s *Service) Delete(ctx context.Context, userID string) (time.Time, error) {
	now := s.cfg.Now().UTC()
	if err := s.store.SetAccountStatus(ctx, userID, store.AccountActive, store.AccountDeleted, now); err != nil {
		return time.Time{}, err
	}
	// After the status: a key made between the two is revoked too, and a
	// failure here leaves a deleted account whose keys the purge's user
	// delete would orphan, so it is an error the caller sees.
	if _, err := s.store.DeleteAPIKeysBy(ctx, userID); err != nil {
		return time.Time{}, fmt.Errorf("delete account %s: %w", userID, err)
	}
	return now.Add(s.cfg.Grace), nil
}

// Restore undoes Delete within the grace period.
func (s *Service) Restore(ctx context.Context, userID string) error {
	return s.store.SetAccountStatus(ctx, userID, store.AccountDeleted, store.AccountActive, s.cfg.Now().UTC())
}

// purgeBatch is how many users one pass of Purge takes at most.
const purgeBatch = 100

// Purge removes the accounts deleted longer than the grace period ago, one
// user at a time: BeforePurge (the audit log's anonymisation), then the
// user, then a mail that the account is gone. A user whose BeforePurge or
// delete fails is kept for the next run; a mail that fails is a warning.
// It returns how many users it purged.
func (s *Service) Purge(ctx context.Context) (int, error) {
	cutoff := s.cfg.Now().UTC().Add(-s.cfg.Grace)
	n := 0
	for {
		ids, err := s.store.DeletedAccounts(ctx, cutoff, purgeBatch)
		if err != nil {
			return n, fmt.Errorf("purge: %w", err)
		}
		failed := 0
		for _, id := range ids {
			if err := s.purgeOne(ctx, id, cutoff); err != nil {
				s.log.Warn("purge deleted account", "user", id, "err", err)
				failed++
				continue
			}
			n++
		}
		// A batch that purged nothing would come back the same.
		if len(ids) < purgeBatch || failed == len(ids) {
			return n, nil
		}
	}
}

func (s *Service) purgeOne(ctx context.Context, id string, cutoff time.Time) error {
	u, _, err := s.store.GetAccount(ctx, id)
	if err != nil {
		return err
	}
	if s.cfg.BeforePurge != nil {
		if err := s.cfg.BeforePurge(ctx, id); err != nil {
			return fmt.Errorf("before purge: %w", err)
		}
	}
	if err := s.handOver(ctx, id); err != nil {
		return err
	}
	if err := s.store.PurgeUser(ctx, id, cutoff); err != nil {
		return err
	}
	s.log.Info("purged deleted account", "user", id)
	if u.Email != "" {
		if err := s.send(ctx, goneMail(u.Email)); err != nil {
			s.log.Warn("mail purged account", "user", id, "err", err)
		}
	}
	return nil
}

// handOver gives each team the user owns to a successor, its first admin,
// else its first member (by user ID), so that no team with people in it
// is left without an owner. A team with no one else stays, ownerless.
func (s *Service) handOver(ctx context.Context, userID string) error {
	ms, err := s.store.TeamsOfUser(ctx, userID)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Role != store.RoleOwner {
			continue
		}
		members, err := s.store.Members(ctx, m.Team.ID)
		if err != nil {
			return err
		}
		successor := ""
		for _, x := range members {
			if x.User.ID == userID {
				continue
			}
			if x.Role == store.RoleAdmin {
				successor = x.User.ID
				break
			}
			if successor == "" {
				successor = x.User.ID
			}
		}
		if successor == "" {
			continue
		}
		if err := s.store.TransferOwnership(ctx, m.Team.ID, userID, successor); err != nil {
			return fmt.Errorf("hand team %s over: %w", m.Team.ID, err)
		}
		s.log.Info("team handed over from a purged owner", "team", m.Team.ID, "owner", successor)
		if s.cfg.HandedOver != nil {
			s.cfg.HandedOver(ctx, m.Team.ID, successor)
		}
	}
	return nil
}

// purgeLease is the lease under which one control plane at a time
// purges (store.AcquireLease). It is held for purgeLeaseFor from each
// pass's start: longer than a pass takes, far shorter than PurgeEvery, so
// that a control plane that died holding it delays nobody's next pass.
// Should two passes still meet, each user is deleted, and mailed, once:
// the delete is conditional.
const (
	purgeLease    = "account-purge"
	purgeLeaseFor = 10 * time.Minute
)

// Run purges at once and then every PurgeEvery until ctx is done, each
// time on one control plane only (PurgeLeased). Its caller owns it and
// waits for it to return.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.PurgeEvery)
	defer t.Stop()
	for {
		if _, err := s.PurgeLeased(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("purge deleted accounts", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PurgeLeased is one pass of Run: Purge if this control plane gets the
// purge's lease, which another holding it refuses (ran is false then).
func (s *Service) PurgeLeased(ctx context.Context) (ran bool, err error) {
	now := s.cfg.Now()
	held, err := s.store.AcquireLease(ctx, purgeLease, s.cfg.Holder, now.Add(purgeLeaseFor), now)
	if err != nil || !held {
		return false, err
	}
	_, err = s.Purge(ctx)
	return true, err
}
