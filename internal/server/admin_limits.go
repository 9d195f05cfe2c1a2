package server

import (
	"net/http"
	"strconv"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// A team's own limits, which platform admins set over the operator's
// defaults (--team-max-*): GET and PUT /v1/admin/teams/{id}/limits. The
// store reads them in the transaction of every create and snapshot, so a
// change holds from the next one on.

// maxTeamLimit bounds a limit an admin sets: far above any real team,
// and far below where sums of limits could overflow.
const maxTeamLimit = 1 << 30

// teamLimitsBody is a team's own limits on the wire: null (or absent) is
// the operator's default, -1 no limit, else the limit. It is the flags'
// vocabulary; the store's "zero is no limit" stays inside.
type teamLimitsBody struct {
	TeamID    string `json:"team_id"`
	Capsules  *int   `json:"capsules"`
	VCPUs     *int   `json:"vcpus"`
	MemoryMB  *int   `json:"memory_mb"`
	Snapshots *int   `json:"snapshots"`
	DiskMB    *int   `json:"disk_mb"`
}

// fields pairs each wire field with the store's and its name, for the
// conversions, the checks and the audit entry's metadata.
func (b *teamLimitsBody) fields(l *store.TeamLimits) []struct {
	name      string
	wire, own **int
} {
	return []struct {
		name      string
		wire, own **int
	}{
		{"capsules", &b.Capsules, &l.Capsules}, {"vcpus", &b.VCPUs, &l.VCPUs}, {"memory_mb", &b.MemoryMB, &l.MemoryMB},
		{"snapshots", &b.Snapshots, &l.Snapshots}, {"disk_mb", &b.DiskMB, &l.DiskMB},
	}
}

func limitsBody(teamID string, l store.TeamLimits) teamLimitsBody {
	b := teamLimitsBody{TeamID: teamID}
	for _, f := range b.fields(&l) {
		if *f.own != nil {
			v := **f.own
			if v == 0 {
				v = -1
			}
			*f.wire = &v
		}
	}
	return b
}

// liveTeam returns nil if id names a team that is not deleted, else the
// error to answer (404), as the other admin team routes do.
func (s *Server) liveTeam(r *http.Request, id string) error {
	t, err := s.store.GetTeam(r.Context(), id)
	if err != nil {
		return err
	}
	if t.DeletedAt != nil {
		return errdefs.NotFound("team %s is deleted", id)
	}
	return nil
}

// getTeamLimits is GET /v1/admin/teams/{id}/limits.
func (s *Server) getTeamLimits(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.liveTeam(r, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	l, err := s.store.TeamLimits(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, limitsBody(id, l))
}

// putTeamLimits is PUT /v1/admin/teams/{id}/limits: it replaces the
// team's own limits (a field left out goes back to the default) and
// records team.set_limits with every field's new value.
func (s *Server) putTeamLimits(w http.ResponseWriter, r *http.Request) {
	var req teamLimitsBody
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	var l store.TeamLimits
	meta := map[string]string{}
	for _, f := range req.fields(&l) {
		if *f.wire == nil {
			meta[f.name] = "default"
			continue
		}
		v := **f.wire
		if v == 0 || v < -1 || v > maxTeamLimit {
			s.writeError(w, r, errdefs.Invalid("%s: %d; want 1 to %d, -1 for no limit, or null for the operator's default", f.name, v, maxTeamLimit))
			return
		}
		meta[f.name] = strconv.Itoa(v)
		if v == -1 {
			v = 0 // the store's "no limit"
		}
		*f.own = &v
	}
	err := s.liveTeam(r, id)
	if err == nil {
		err = s.store.SetTeamLimits(r.Context(), id, l)
	}
	s.record(r, adminEntry("team.set_limits", id, meta), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, limitsBody(id, l))
}
