package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

const hostColumns = "id, name, address, agent_token, state, unreachable, capacity, last_seen, created_at"

// RegisterHost takes one use of the join token that hashes to tokenHash
// and inserts h, in one transaction: a token used up by a concurrent
// registration is not used twice.
func (s *Store) RegisterHost(ctx context.Context, h store.Host, tokenHash string, now time.Time) error {
	if h.State == "" {
		h.State = store.HostActive
	}
	capacity, err := json.Marshal(h.Capacity)
	if err != nil {
		return fmt.Errorf("register host %s: %w", h.ID, err)
	}
	return s.inTx(ctx, func(tx conn) error {
		res, err := tx.exec(ctx, `UPDATE join_tokens SET uses_left = uses_left - 1
			WHERE hash = ? AND uses_left > 0 AND expires_at > ?`, tokenHash, s.d.time(now))
		if err != nil {
			return fmt.Errorf("register host %s: %w", h.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errdefs.Unauthenticated("register host %s: the join token is unknown, expired or used up", h.ID)
		}
		_, err = tx.exec(ctx, `INSERT INTO hosts (`+hostColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			h.ID, h.Name, h.Address, h.AgentToken, string(h.State), h.Unreachable, string(capacity), s.d.time(h.LastSeen), s.d.time(h.Created))
		if err != nil {
			return fmt.Errorf("register host %s: %w", h.ID, err)
		}
		return nil
	})
}

// HeartbeatHost first tries the update that also makes an unreachable
// host reachable, so that exactly one heartbeat reports the return.
func (s *Store) HeartbeatHost(ctx context.Context, id, address string, c store.HostCapacity, at time.Time) (bool, error) {
	capacity, err := json.Marshal(c)
	if err != nil {
		return false, fmt.Errorf("heartbeat of host %s: %w", id, err)
	}
	back, err := s.execOne(ctx, `UPDATE hosts SET address = ?, capacity = ?, last_seen = ?, unreachable = ?
		WHERE id = ? AND unreachable = ?`, address, string(capacity), s.d.time(at), false, id, true)
	if err != nil {
		return false, fmt.Errorf("heartbeat of host %s: %w", id, err)
	}
	if back {
		return true, nil
	}
	ok, err := s.execOne(ctx, `UPDATE hosts SET address = ?, capacity = ?, last_seen = ? WHERE id = ?`,
		address, string(capacity), s.d.time(at), id)
	if err != nil {
		return false, fmt.Errorf("heartbeat of host %s: %w", id, err)
	}
	if !ok {
		return false, errdefs.NotFound("host %s not found", id)
	}
	return false, nil
}

// MarkHostsUnreachable is one conditional UPDATE ... RETURNING (both
// SQLite and PostgreSQL have it).
func (s *Store) MarkHostsUnreachable(ctx context.Context, seenBefore time.Time) ([]string, error) {
	rows, err := s.writer().query(ctx, `UPDATE hosts SET unreachable = ? WHERE unreachable = ? AND last_seen < ? RETURNING id`,
		true, false, s.d.time(seenBefore))
	if err != nil {
		return nil, fmt.Errorf("mark hosts unreachable: %w", err)
	}
	ids, err := collect(rows, func(r scanner) (string, error) {
		var id string
		err := r.Scan(&id)
		return id, err
	})
	if err != nil {
		return nil, fmt.Errorf("mark hosts unreachable: %w", err)
	}
	return ids, nil
}

// SetHostState sets a host's scheduling state.
func (s *Store) SetHostState(ctx context.Context, id string, st store.HostState) error {
	if !st.Valid() {
		return errdefs.Invalid("host state %q is not one of active, cordoned, draining", st)
	}
	ok, err := s.execOne(ctx, `UPDATE hosts SET state = ? WHERE id = ?`, string(st), id)
	if err != nil {
		return fmt.Errorf("set the state of host %s: %w", id, err)
	}
	if !ok {
		return errdefs.NotFound("host %s not found", id)
	}
	return nil
}

// DeleteHost removes a host's row.
func (s *Store) DeleteHost(ctx context.Context, id string) error {
	ok, err := s.execOne(ctx, `DELETE FROM hosts WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete host %s: %w", id, err)
	}
	if !ok {
		return errdefs.NotFound("host %s not found", id)
	}
	return nil
}

// GetHost returns the host with id.
func (s *Store) GetHost(ctx context.Context, id string) (store.Host, error) {
	h, err := s.scanHost(s.reader().row(ctx, "SELECT "+hostColumns+" FROM hosts WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Host{}, errdefs.NotFound("host %s not found", id)
	}
	if err != nil {
		return store.Host{}, fmt.Errorf("get host %s: %w", id, err)
	}
	return h, nil
}

// ListHosts lists every host, oldest registration first.
func (s *Store) ListHosts(ctx context.Context) ([]store.Host, error) {
	rows, err := s.reader().query(ctx, "SELECT "+hostColumns+" FROM hosts ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	hs, err := collect(rows, s.scanHost)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	return hs, nil
}

func (s *Store) scanHost(row scanner) (store.Host, error) {
	var h store.Host
	var st string
	err := row.Scan(&h.ID, &h.Name, &h.Address, &h.AgentToken, &st, &h.Unreachable, jsonCol{&h.Capacity},
		s.d.timeCol(&h.LastSeen), s.d.timeCol(&h.Created))
	h.State = store.HostState(st)
	return h, err
}

// jsonCol scans a JSON column into dst.
type jsonCol struct{ dst any }

func (c jsonCol) Scan(v any) error { return unmarshalCol(v, c.dst) }

const joinTokenColumns = "id, hash, created_by, created_at, expires_at, uses_left"

// CreateJoinToken counts the unexpired tokens and inserts t in one
// transaction under the dialect's KeyLock, so that concurrent creations
// cannot pass max together.
func (s *Store) CreateJoinToken(ctx context.Context, t store.JoinToken, max int, now time.Time) error {
	return s.inTx(ctx, func(tx conn) error {
		if s.d.KeyLock != "" {
			if _, err := tx.exec(ctx, s.d.KeyLock, "join_tokens"); err != nil {
				return fmt.Errorf("create join token: %w", err)
			}
		}
		var n int
		if err := tx.row(ctx, `SELECT count(*) FROM join_tokens WHERE expires_at > ? AND uses_left > 0`, s.d.time(now)).Scan(&n); err != nil {
			return fmt.Errorf("create join token: %w", s.d.Kind(err))
		}
		if max > 0 && n >= max {
			return fmt.Errorf("create join token: %d unexpired join tokens exist, the most allowed: %w", n, errdefs.ErrExhausted)
		}
		_, err := tx.exec(ctx, `INSERT INTO join_tokens (`+joinTokenColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
			t.ID, t.Hash, t.CreatedBy, s.d.time(t.Created), s.d.time(t.Expires), t.UsesLeft)
		if err != nil {
			return fmt.Errorf("create join token: %w", err)
		}
		return nil
	})
}

// ListJoinTokens lists the usable tokens, oldest first.
func (s *Store) ListJoinTokens(ctx context.Context, now time.Time) ([]store.JoinToken, error) {
	rows, err := s.reader().query(ctx, `SELECT `+joinTokenColumns+` FROM join_tokens
		WHERE expires_at > ? AND uses_left > 0 ORDER BY created_at, id`, s.d.time(now))
	if err != nil {
		return nil, fmt.Errorf("list join tokens: %w", err)
	}
	ts, err := collect(rows, func(r scanner) (store.JoinToken, error) {
		var t store.JoinToken
		err := r.Scan(&t.ID, &t.Hash, &t.CreatedBy, s.d.timeCol(&t.Created), s.d.timeCol(&t.Expires), &t.UsesLeft)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list join tokens: %w", err)
	}
	return ts, nil
}

// DeleteJoinToken revokes a token.
func (s *Store) DeleteJoinToken(ctx context.Context, id string) error {
	ok, err := s.execOne(ctx, `DELETE FROM join_tokens WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete join token %s: %w", id, err)
	}
	if !ok {
		return errdefs.NotFound("join token %s not found", id)
	}
	return nil
}

// AcquireLease is one upsert whose update applies only to a free lease or
// the holder's own: the row count says who holds it.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, until, now time.Time) (bool, error) {
	ok, err := s.execOne(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at <= ?`,
		name, holder, s.d.time(until), s.d.time(now))
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return ok, nil
}
