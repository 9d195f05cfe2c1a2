package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

const accountColumns = "a.user_id, a.password_hash, a.password_version, a.status, a.verified_at, a.deleted_at, a.created_at, u.email, u.name, u.admin, u.created_at"

// CreateAccount inserts u and a in one transaction.
func (s *Store) CreateAccount(ctx context.Context, u store.User, a store.Account) error {
	err := s.inTx(ctx, func(tx conn) error {
		_, err := tx.exec(ctx, "INSERT INTO users (id, email, name, admin, created_at) VALUES (?, ?, ?, ?, ?)",
			u.ID, u.Email, u.Name, u.Admin, s.d.time(u.CreatedAt))
		if err != nil {
			return err
		}
		_, err = tx.exec(ctx, `INSERT INTO accounts (user_id, password_hash, password_version, status, verified_at, deleted_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			u.ID, a.PasswordHash, a.PasswordVersion, string(a.Status), s.d.timePtr(a.VerifiedAt), s.d.timePtr(a.DeletedAt), s.d.time(a.CreatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create account %s: %w", u.ID, err)
	}
	return nil
}

// AccountByEmail finds the account of email.
func (s *Store) AccountByEmail(ctx context.Context, email string) (store.User, store.Account, error) {
	u, a, err := s.scanAccount(s.reader().row(ctx,
		"SELECT "+accountColumns+" FROM accounts a JOIN users u ON u.id = a.user_id WHERE u.email = ?", email))
	if errors.Is(err, sql.ErrNoRows) {
		// The email stays out of the message: it may be logged.
		return store.User{}, store.Account{}, errdefs.NotFound("account not found")
	}
	if err != nil {
		return store.User{}, store.Account{}, fmt.Errorf("find account: %w", err)
	}
	return u, a, nil
}

// GetAccount returns the user userID and its account.
func (s *Store) GetAccount(ctx context.Context, userID string) (store.User, store.Account, error) {
	u, a, err := s.scanAccount(s.reader().row(ctx,
		"SELECT "+accountColumns+" FROM accounts a JOIN users u ON u.id = a.user_id WHERE a.user_id = ?", userID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, store.Account{}, errdefs.NotFound("account %s not found", userID)
	}
	if err != nil {
		return store.User{}, store.Account{}, fmt.Errorf("get account %s: %w", userID, err)
	}
	return u, a, nil
}

// ActivateAccount verifies the account, creates its team and claims the
// installation's first activation, in one transaction. The claim is a
// compare-and-set on the installation's one row: concurrent activations
// serialise on that row (PostgreSQL re-reads it after the first commits),
// so exactly one becomes admin.
func (s *Store) ActivateAccount(ctx context.Context, userID string, t store.Team, at time.Time) (bool, error) {
	var admin bool
	err := s.inTx(ctx, func(tx conn) error {
		res, err := tx.exec(ctx, "UPDATE accounts SET verified_at = ? WHERE user_id = ? AND verified_at IS NULL AND status = ?",
			s.d.time(at), userID, string(store.AccountActive))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return s.activateConflict(ctx, tx, userID)
		}
		if _, err := tx.exec(ctx, "INSERT INTO teams (id, name, created_at) VALUES (?, ?, ?)", t.ID, t.Name, s.d.time(t.CreatedAt)); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, "INSERT INTO team_members (team_id, user_id, role) VALUES (?, ?, ?)", t.ID, userID, string(store.RoleOwner)); err != nil {
			return err
		}
		res, err = tx.exec(ctx, "UPDATE installation SET first_user = ? WHERE id = 1 AND first_user IS NULL", userID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			admin = true
			_, err = tx.exec(ctx, "UPDATE users SET admin = TRUE WHERE id = ?", userID)
			return err
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("activate account %s: %w", userID, err)
	}
	return admin, nil
}

// activateConflict explains why an activation changed nothing.
func (s *Store) activateConflict(ctx context.Context, tx conn, userID string) error {
	var status string
	var verified sql.NullString
	err := tx.row(ctx, "SELECT status, CASE WHEN verified_at IS NULL THEN NULL ELSE 'yes' END FROM accounts WHERE user_id = ?", userID).Scan(&status, &verified)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return errdefs.NotFound("account %s not found", userID)
	case err != nil:
		return err
	case verified.Valid:
		return errdefs.Conflict("account %s is already verified", userID)
	}
	return errdefs.Conflict("account %s is %s", userID, status)
}

// SetAccountStatus is a compare-and-set of the account's status.
func (s *Store) SetAccountStatus(ctx context.Context, userID string, from, to store.AccountStatus, at time.Time) error {
	var deleted any
	if to == store.AccountDeleted {
		deleted = s.d.time(at)
	}
	err := s.inTx(ctx, func(tx conn) error {
		res, err := tx.exec(ctx, "UPDATE accounts SET status = ?, deleted_at = ? WHERE user_id = ? AND status = ?",
			string(to), deleted, userID, string(from))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			var cur string
			err := tx.row(ctx, "SELECT status FROM accounts WHERE user_id = ?", userID).Scan(&cur)
			if errors.Is(err, sql.ErrNoRows) {
				return errdefs.NotFound("account %s not found", userID)
			}
			if err != nil {
				return err
			}
			return errdefs.Conflict("account %s is %s, not %s", userID, cur, from)
		}
		if to != store.AccountActive {
			_, err = tx.exec(ctx, "DELETE FROM sessions WHERE user_id = ?", userID)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("set account %s %s: %w", userID, to, err)
	}
	return nil
}

// SetPassword is a compare-and-set on the password's version.
func (s *Store) SetPassword(ctx context.Context, userID, hash string, version int64) error {
	err := s.inTx(ctx, func(tx conn) error {
		res, err := tx.exec(ctx, "UPDATE accounts SET password_hash = ?, password_version = password_version + 1 WHERE user_id = ? AND password_version = ?",
			hash, userID, version)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return errdefs.Conflict("the password of account %s changed since version %d", userID, version)
		}
		_, err = tx.exec(ctx, "DELETE FROM sessions WHERE user_id = ?", userID)
		return err
	})
	if err != nil {
		return fmt.Errorf("set password of %s: %w", userID, err)
	}
	return nil
}

// DeletedAccounts lists users deleted before t, oldest deletion first.
func (s *Store) DeletedAccounts(ctx context.Context, before time.Time, limit int) ([]string, error) {
	rows, err := s.reader().query(ctx,
		"SELECT user_id FROM accounts WHERE deleted_at IS NOT NULL AND deleted_at < ? ORDER BY deleted_at, user_id LIMIT ?",
		s.d.time(before), limit)
	if err != nil {
		return nil, fmt.Errorf("list deleted accounts: %w", err)
	}
	ids, err := collect(rows, func(row scanner) (string, error) {
		var id string
		return id, row.Scan(&id)
	})
	if err != nil {
		return nil, fmt.Errorf("list deleted accounts: %w", err)
	}
	return ids, nil
}

// PurgeUser deletes the user if its account is still deleted since before
// t; the foreign keys take its account, sessions and memberships along.
func (s *Store) PurgeUser(ctx context.Context, userID string, before time.Time) error {
	ok, err := s.execOne(ctx, `DELETE FROM users WHERE id = ? AND EXISTS (
		SELECT 1 FROM accounts a WHERE a.user_id = users.id AND a.status = ? AND a.deleted_at < ?)`,
		userID, string(store.AccountDeleted), s.d.time(before))
	if err != nil {
		return fmt.Errorf("purge user %s: %w", userID, err)
	}
	if !ok {
		if _, _, err := s.GetAccount(ctx, userID); err != nil {
			return fmt.Errorf("purge user %s: %w", userID, err)
		}
		return errdefs.Conflict("purge user %s: not deleted before %s", userID, before.Format(time.RFC3339))
	}
	return nil
}

// scanAccount reads one row of accountColumns.
func (s *Store) scanAccount(row scanner) (store.User, store.Account, error) {
	var u store.User
	var a store.Account
	err := row.Scan(&a.UserID, &a.PasswordHash, &a.PasswordVersion, &a.Status,
		s.d.nullTimeCol(&a.VerifiedAt), s.d.nullTimeCol(&a.DeletedAt), s.d.timeCol(&a.CreatedAt),
		&u.Email, &u.Name, &u.Admin, s.d.timeCol(&u.CreatedAt))
	u.ID = a.UserID
	return u, a, err
}
