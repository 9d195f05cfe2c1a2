package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"nestbox.dev/internal/store"
)

// DeleteAPIKeysBy revokes the keys userID made.
func (s *Store) DeleteAPIKeysBy(ctx context.Context, userID string) (int, error) {
	res, err := s.writer().exec(ctx, "DELETE FROM api_keys WHERE created_by = ?", userID)
	if err != nil {
		return 0, fmt.Errorf("revoke API keys made by %s: %w", userID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("revoke API keys made by %s: %w", userID, err)
	}
	return int(n), nil
}

// ListUsers lists users after after, by ID, with their accounts.
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]store.UserAccount, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := s.reader().query(ctx, `
		SELECT u.id, u.email, u.name, u.admin, u.created_at,
			a.user_id, a.password_version, a.status, a.verified_at, a.deleted_at, a.created_at
		FROM users u LEFT JOIN accounts a ON a.user_id = u.id
		WHERE u.id > ? ORDER BY u.id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	us, err := collect(rows, func(row scanner) (store.UserAccount, error) {
		var x store.UserAccount
		var accID, status sql.NullString
		var version sql.NullInt64
		var accCreated *time.Time
		a := &x.Account
		err := row.Scan(&x.User.ID, &x.User.Email, &x.User.Name, &x.User.Admin, s.d.timeCol(&x.User.CreatedAt),
			&accID, &version, &status, s.d.nullTimeCol(&a.VerifiedAt), s.d.nullTimeCol(&a.DeletedAt), s.d.nullTimeCol(&accCreated))
		if err != nil || !accID.Valid {
			return store.UserAccount{User: x.User}, err
		}
		a.UserID, a.PasswordVersion, a.Status = accID.String, version.Int64, store.AccountStatus(status.String)
		if accCreated != nil {
			a.CreatedAt = *accCreated
		}
		return x, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return us, nil
}
