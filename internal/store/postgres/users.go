package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// CreateUser inserts u. A taken ID or a taken non-empty email is
// ErrAlreadyExists.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	_, err := s.pool.Exec(ctx,
		"INSERT INTO users (id, email, name, admin, created_at) VALUES ($1, $2, $3, $4, $5)",
		u.ID, u.Email, u.Name, u.Admin, u.CreatedAt)
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, kindOf(err))
	}
	return nil
}

// GetUser returns the user with id.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	u := store.User{ID: id}
	err := s.pool.QueryRow(ctx, "SELECT email, name, admin, created_at FROM users WHERE id = $1", id).
		Scan(&u.Email, &u.Name, &u.Admin, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.User{}, errdefs.NotFound("user %s not found", id)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("get user %s: %w", id, err)
	}
	return u, nil
}
