package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"nestbox.dev/internal/errdefs"
)

// The platform admins' team actions: the BYOC flag and soft deletion.
// Each change is audited with scope admin (record).

type byocBody struct {
	TeamID  string `json:"team_id"`
	BYOC    bool   `json:"byoc"`
	Changed bool   `json:"changed"`
}

// setTeamBYOC is PUT /v1/admin/teams/{id}/byoc {byoc}. The flag is stored
// and listed; nothing enforces it yet (docs/admin.md). Asking for what
// already is changes nothing and records nothing (200, changed false).
func (s *Server) setTeamBYOC(w http.ResponseWriter, r *http.Request) {
	var req struct {
		BYOC *bool `json:"byoc"`
	}
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.BYOC == nil {
		s.writeError(w, r, errdefs.Invalid("byoc: required (true or false)"))
		return
	}
	id := r.PathValue("id")
	changed, err := s.store.SetTeamBYOC(r.Context(), id, *req.BYOC)
	if changed || err != nil {
		action := "team.disable_byoc"
		if *req.BYOC {
			action = "team.enable_byoc"
		}
		s.record(r, adminEntry(action, id, nil), err)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, byocBody{TeamID: id, BYOC: *req.BYOC, Changed: changed})
}

type teamDeletionBody struct {
	TeamID            string    `json:"team_id"`
	DeletedAt         time.Time `json:"deleted_at"`
	Changed           bool      `json:"changed"`
	KeysRevoked       int       `json:"keys_revoked"`
	SessionsEnded     int       `json:"sessions_ended"`
	CapsulesDestroyed int       `json:"capsules_destroyed"`
}

// deleteTeam is DELETE /v1/admin/teams/{id}: a soft delete. The store
// marks the team deleted and removes its API keys, the sessions acting for
// it and its pending invitations in one transaction, so that nobody acts
// in it from then on; then its live capsules are destroyed through the
// lifecycle service. It is idempotent: a second call finds the team
// deleted and destroys any capsule the first left (a failure midway), and
// records an entry only if it did something. The platform team cannot be
// deleted (409).
func (s *Server) deleteTeam(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == s.cfg.PlatformTeamID {
		err := errdefs.Conflict("team %s is the platform team: it cannot be deleted", id)
		s.record(r, adminEntry("team.delete", id, nil), err)
		s.writeError(w, r, err)
		return
	}
	// The steps go on if the admin's client goes away: a delete half done
	// would leave capsules running in a team nobody can reach.
	ctx := context.WithoutCancel(r.Context())
	d, err := s.store.DeleteTeam(ctx, id, s.cfg.Now().UTC())
	if d.KeysRevoked > 0 {
		s.keysRevoked(ctx) // even if a later step fails: the keys are gone
	}
	out := teamDeletionBody{TeamID: id, Changed: d.Changed, KeysRevoked: d.KeysRevoked, SessionsEnded: d.SessionsEnded}
	if err == nil {
		out.CapsulesDestroyed, err = s.destroyLiveCapsules(ctx, id)
	}
	if d.Changed || out.CapsulesDestroyed > 0 || err != nil {
		s.record(r, adminEntry("team.delete", id, map[string]string{
			"keys_revoked":       strconv.Itoa(out.KeysRevoked),
			"sessions_ended":     strconv.Itoa(out.SessionsEnded),
			"capsules_destroyed": strconv.Itoa(out.CapsulesDestroyed),
		}), err)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.store.GetTeam(ctx, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if t.DeletedAt != nil {
		out.DeletedAt = *t.DeletedAt
	}
	writeJSON(w, http.StatusOK, out)
}
