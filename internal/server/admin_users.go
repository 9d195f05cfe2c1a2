package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/capsulestate"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

type adminUserBody struct {
	userBody
	Status     store.AccountStatus `json:"status,omitempty"` // "" for a user without an account (the bootstrap admin)
	VerifiedAt *time.Time          `json:"verified_at,omitempty"`
	DeletedAt  *time.Time          `json:"deleted_at,omitempty"`
}

// listUsers pages through every user by ID: ?limit (default 100, at most
// 1000) and ?after, the last ID of the previous page.
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	us, err := s.store.ListUsers(r.Context(), r.URL.Query().Get("after"), limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		Users []adminUserBody `json:"users"`
		// Next is the ?after of the next page; "" on the last.
		Next string `json:"next,omitempty"`
	}{Users: []adminUserBody{}}
	for _, u := range us {
		out.Users = append(out.Users, adminUserBody{userBody: publicUser(u.User), Status: u.Account.Status,
			VerifiedAt: u.Account.VerifiedAt, DeletedAt: u.Account.DeletedAt})
	}
	if len(us) == limit {
		out.Next = us[len(us)-1].User.ID
	}
	writeJSON(w, http.StatusOK, out)
}

// pageLimit reads ?limit: 1 to 1000, default 100.
func pageLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, errdefs.Invalid("limit %q: want 1 to 1000", v)
	}
	return n, nil
}

type adminTeamBody struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	OwnerID   string    `json:"owner_id,omitempty"`
	Members   int       `json:"members"`
	CreatedAt time.Time `json:"created_at"`
	// BYOC and DeletedAt are the admins' team actions (admin_teams.go).
	BYOC      bool       `json:"byoc"`
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
}

// listAllTeams pages through every team by ID, like listUsers.
func (s *Server) listAllTeams(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ts, err := s.store.ListTeams(r.Context(), r.URL.Query().Get("after"), limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		Teams []adminTeamBody `json:"teams"`
		Next  string          `json:"next,omitempty"`
	}{Teams: []adminTeamBody{}}
	for _, t := range ts {
		out.Teams = append(out.Teams, adminTeamBody{ID: t.Team.ID, Name: t.Team.Name, OwnerID: t.OwnerID, Members: t.Members, CreatedAt: t.Team.CreatedAt,
			BYOC: t.Team.BYOC, DeletedAt: t.Team.DeletedAt})
	}
	if len(ts) == limit {
		out.Next = ts[len(ts)-1].Team.ID
	}
	writeJSON(w, http.StatusOK, out)
}

type statusBody struct {
	UserID          string              `json:"user_id"`
	Status          store.AccountStatus `json:"status"`
	KeysRevoked     int                 `json:"keys_revoked"`
	CapsulesStopped int                 `json:"capsules_stopped"`
}

// setUserStatus activates or deactivates an account. Deactivating ends its
// sessions, revokes the API keys it made and destroys the live capsules of
// the teams it owns.
func (s *Server) setUserStatus(w http.ResponseWriter, r *http.Request) {
	acc, err := s.accounts()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req struct {
		Status store.AccountStatus `json:"status"`
	}
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	out := statusBody{UserID: id, Status: req.Status}
	switch req.Status {
	case store.AccountActive:
		err = acc.Enable(r.Context(), id)
	case store.AccountDisabled:
		out.KeysRevoked, err = acc.Disable(r.Context(), id)
		// Even a failed Disable may have revoked keys.
		s.keysRevoked(r.Context())
		if err == nil {
			out.CapsulesStopped, err = s.stopOwnedCapsules(r.Context(), id)
		}
	default:
		s.writeError(w, r, errdefs.Invalid("status %q: want active or disabled (deletion: DELETE /v1/users/me)", req.Status))
		return
	}
	action, meta := "user.activate", map[string]string(nil)
	if req.Status == store.AccountDisabled {
		action, meta = "user.deactivate", map[string]string{"keys_revoked": strconv.Itoa(out.KeysRevoked), "capsules_stopped": strconv.Itoa(out.CapsulesStopped)}
	}
	s.record(r, adminEntry(action, id, meta), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// stopOwnedCapsules destroys the live capsules of every team userID owns
// and returns how many it destroyed. It goes on past a capsule it cannot
// destroy, and reports those at the end.
func (s *Server) stopOwnedCapsules(ctx context.Context, userID string) (int, error) {
	ms, err := s.store.TeamsOfUser(ctx, userID)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, m := range ms {
		if m.Role != store.RoleOwner {
			continue
		}
		k, err := s.destroyLiveCapsules(ctx, m.Team.ID)
		n += k
		if err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// destroyLiveCapsules destroys, through the lifecycle service, every
// capsule of teamID that is live and not already stopping, and returns
// how many it destroyed. It goes on past a capsule it cannot destroy, and
// reports those at the end; a listing that fails stops it.
func (s *Server) destroyLiveCapsules(ctx context.Context, teamID string) (int, error) {
	var live []nestbox.Status
	for _, st := range capsulestate.All() {
		if capsulestate.Live(st) && st != capsulestate.Stopping {
			live = append(live, st)
		}
	}
	n := 0
	var errs []error
	cursor := ""
	for {
		page, err := s.life.List(ctx, teamID, store.CapsuleFilter{Statuses: live, Limit: 1000, Cursor: cursor})
		if err != nil {
			return n, errors.Join(append(errs, err)...)
		}
		for _, c := range page.Capsules {
			if _, err := s.life.Destroy(ctx, teamID, c.ID); err != nil {
				errs = append(errs, fmt.Errorf("destroy capsule %s: %w", c.ID, err))
				continue
			}
			n++
		}
		if page.NextCursor == "" {
			return n, errors.Join(errs...)
		}
		cursor = page.NextCursor
	}
}
