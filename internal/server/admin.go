package server

import (
	"context"
	"errors"
	"net/http"

	"nestbox.dev/internal/errdefs"
)

// The platform admin routes under /v1/admin. Each change is recorded in
// the audit log with scope admin, under the platform team (record).

// platformAdmin wraps h so that it runs only for a platform admin: a
// session of a user who is an admin now, or an API key of the platform
// team (Config.PlatformTeamID, the bootstrap's) made by a user who is an
// admin now. Anyone else authenticated gets 403.
func (s *Server) platformAdmin(h http.HandlerFunc) http.HandlerFunc {
	return s.authenticated(func(w http.ResponseWriter, r *http.Request) {
		p, _ := r.Context().Value(principalKey{}).(principal)
		if err := s.checkAdmin(r.Context(), p); err != nil {
			s.writeError(w, r, err)
			return
		}
		h(w, r)
	})
}

func (s *Server) checkAdmin(ctx context.Context, p principal) error {
	denied := errdefs.Permission("platform admins only")
	userID := p.UserID
	if p.Session == nil {
		if s.cfg.PlatformTeamID == "" || p.TeamID != s.cfg.PlatformTeamID || p.Key.CreatedBy == "" {
			return denied
		}
		userID = p.Key.CreatedBy
	}
	u, err := s.store.GetUser(ctx, userID)
	if errors.Is(err, errdefs.ErrNotFound) {
		return denied
	}
	if err != nil {
		return err
	}
	if !u.Admin {
		return denied
	}
	return nil
}

type setAdminRequest struct {
	Admin *bool `json:"admin"`
}

type adminBody struct {
	UserID  string `json:"user_id"`
	Admin   bool   `json:"admin"`
	Changed bool   `json:"changed"`
}

// setAdmin grants or revokes platform admin. Revoking the last admin is
// 409 (conflict); asking for what already is changes nothing (200,
// changed false).
func (s *Server) setAdmin(w http.ResponseWriter, r *http.Request) {
	var req setAdminRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Admin == nil {
		s.writeError(w, r, errdefs.Invalid("admin: required (true or false)"))
		return
	}
	id := r.PathValue("id")
	changed, err := s.store.SetAdmin(r.Context(), id, *req.Admin)
	// Asking for what already is changes nothing and records nothing.
	if changed || err != nil {
		action := "user.revoke_admin"
		if *req.Admin {
			action = "user.grant_admin"
		}
		s.record(r, adminEntry(action, id, nil), err)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, adminBody{UserID: id, Admin: *req.Admin, Changed: changed})
}

// restoreUser undoes the deletion of an account within its grace period.
func (s *Server) restoreUser(w http.ResponseWriter, r *http.Request) {
	acc, err := s.accounts()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	err = acc.Restore(r.Context(), id)
	s.record(r, adminEntry("user.restore", id, nil), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := s.store.GetUser(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, publicUser(u))
}
