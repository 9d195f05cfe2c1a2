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

const sessionColumns = "id, user_id, team_id, token_hash, refresh_hash, expires_at, refresh_expires_at, created_at"

// CreateSession inserts sess and ends the user's oldest sessions beyond
// max, in one transaction. A team deleted meanwhile is ErrNotFound: the
// team's row is read under the lock DeleteTeam takes, so a session is
// never made for a team after its delete has ended its sessions.
func (s *Store) CreateSession(ctx context.Context, sess store.Session, max int) error {
	if max <= 0 {
		return errdefs.Invalid("create session %s: max %d: want at least 1", sess.ID, max)
	}
	err := s.inTx(ctx, func(tx conn) error {
		var id string
		err := tx.row(ctx, "SELECT id FROM teams WHERE id = ? AND deleted_at IS NULL "+s.d.RowLock, sess.TeamID).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return errdefs.NotFound("team %s not found", sess.TeamID)
		}
		if err != nil {
			return err
		}
		_, err = tx.exec(ctx, "INSERT INTO sessions ("+sessionColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			sess.ID, sess.UserID, sess.TeamID, sess.TokenHash, sess.RefreshHash,
			s.d.time(sess.ExpiresAt), s.d.time(sess.RefreshExpiresAt), s.d.time(sess.CreatedAt))
		if err != nil {
			return err
		}
		_, err = tx.exec(ctx, `DELETE FROM sessions WHERE user_id = ? AND id NOT IN (
			SELECT id FROM sessions WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?)`,
			sess.UserID, sess.UserID, max)
		return err
	})
	if err != nil {
		return fmt.Errorf("create session %s: %w", sess.ID, err)
	}
	return nil
}

// SessionByToken finds a live session by its access token's hash.
func (s *Store) SessionByToken(ctx context.Context, hash string, now time.Time) (store.Session, error) {
	sess, err := s.scanSession(s.reader().row(ctx,
		"SELECT "+sessionColumns+" FROM sessions WHERE token_hash = ? AND expires_at > ?", hash, s.d.time(now)))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Session{}, errdefs.NotFound("session not found")
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("find session: %w", err)
	}
	return sess, nil
}

// RefreshSession rotates a session's tokens: compare-and-set on the
// refresh hash, so that of two uses of one refresh token one fails.
func (s *Store) RefreshSession(ctx context.Context, refreshHash string, now time.Time, next store.Session) (store.Session, error) {
	var sess store.Session
	err := s.inTx(ctx, func(tx conn) error {
		res, err := tx.exec(ctx, `UPDATE sessions SET token_hash = ?, refresh_hash = ?, expires_at = ?, refresh_expires_at = ?
			WHERE refresh_hash = ? AND refresh_expires_at > ?`,
			next.TokenHash, next.RefreshHash, s.d.time(next.ExpiresAt), s.d.time(next.RefreshExpiresAt),
			refreshHash, s.d.time(now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return errdefs.NotFound("session not found")
		}
		sess, err = s.scanSession(tx.row(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE refresh_hash = ?", next.RefreshHash))
		return err
	})
	if err != nil {
		return store.Session{}, fmt.Errorf("refresh session: %w", err)
	}
	return sess, nil
}

// DeleteSession ends session id of userID.
func (s *Store) DeleteSession(ctx context.Context, userID, id string) error {
	ok, err := s.execOne(ctx, "DELETE FROM sessions WHERE id = ? AND user_id = ?", id, userID)
	if err != nil {
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	if !ok {
		return errdefs.NotFound("session %s not found", id)
	}
	return nil
}

func (s *Store) scanSession(row scanner) (store.Session, error) {
	var x store.Session
	err := row.Scan(&x.ID, &x.UserID, &x.TeamID, &x.TokenHash, &x.RefreshHash,
		s.d.timeCol(&x.ExpiresAt), s.d.timeCol(&x.RefreshExpiresAt), s.d.timeCol(&x.CreatedAt))
	return x, err
}
