package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// CreateUser inserts u. A taken ID or a taken non-empty email is
// ErrAlreadyExists.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	_, err := s.writer().exec(ctx,
		"INSERT INTO users (id, email, name, admin, created_at) VALUES (?, ?, ?, ?, ?)",
		u.ID, u.Email, u.Name, u.Admin, s.d.time(u.CreatedAt))
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, err)
	}
	return nil
}

// GetUser returns the user with id.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	u := store.User{ID: id}
	err := s.reader().row(ctx, "SELECT email, name, admin, created_at FROM users WHERE id = ?", id).
		Scan(&u.Email, &u.Name, &u.Admin, s.d.timeCol(&u.CreatedAt))
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, errdefs.NotFound("user %s not found", id)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("get user %s: %w", id, err)
	}
	return u, nil
}
