package sqlstore

import (
	"context"
	"fmt"

	"nestbox.dev/internal/errdefs"
)

// revokeAdmin is the one statement that revokes platform admin. The inner
// SELECT locks every admin's row in ID order (the dialect's row lock;
// SQLite's one writer needs none) before counting them: concurrent revokes
// queue on the first row they share, and each one that waited counts the
// rows as the earlier ones left them (PostgreSQL re-reads a row it waited
// for and drops it when it is no longer an admin). Locking in one order
// cannot deadlock. A revoke that would leave no admin changes nothing.
const revokeAdmin = `UPDATE users SET admin = FALSE
	WHERE id = ? AND admin = TRUE
	AND (SELECT COUNT(*) FROM (SELECT id FROM users WHERE admin = TRUE ORDER BY id %s) a) > 1`

// SetAdmin grants or revokes platform admin. Nothing changes when the user
// already is as asked; the last admin is not revoked (ErrConflict).
func (s *Store) SetAdmin(ctx context.Context, userID string, admin bool) (bool, error) {
	var changed bool
	var err error
	if admin {
		changed, err = s.execOne(ctx, "UPDATE users SET admin = TRUE WHERE id = ? AND admin = FALSE", userID)
	} else {
		changed, err = s.execOne(ctx, fmt.Sprintf(revokeAdmin, s.d.RowLock), userID)
	}
	if err != nil {
		return false, fmt.Errorf("set admin of %s to %v: %w", userID, admin, err)
	}
	if changed {
		return true, nil
	}
	// Nothing changed: say why. The read runs after the write, so it may
	// see later changes; it only chooses the error.
	u, err := s.GetUser(ctx, userID)
	if err != nil {
		return false, fmt.Errorf("set admin of %s: %w", userID, err)
	}
	if u.Admin == admin {
		return false, nil
	}
	return false, errdefs.Conflict("user %s is the last platform admin: grant another first", userID)
}
