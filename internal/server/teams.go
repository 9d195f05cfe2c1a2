package server

import (
	"net/http"
	"strconv"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
	teamsvc "nestbox.dev/internal/team"
)

// The team routes: a user's teams, members and roles, invitations and a
// team's settings. They act as a user: a session's, or the one who made
// the API key. Roles are checked by internal/team; a team the user is not
// in is 404.

// teams returns the team service, or an error if this control plane runs
// without it.
func (s *Server) teams() (*teamsvc.Service, error) {
	if s.cfg.Teams == nil {
		return nil, errdefs.Unimplemented("teams are not enabled on this control plane")
	}
	return s.cfg.Teams, nil
}

// actor is the user an authenticated request acts as, or an error when no
// user is known (a key made before keys recorded their maker).
func actor(r *http.Request) (string, error) {
	if u := creator(r); u != "" {
		return u, nil
	}
	return "", errdefs.Permission("this API key was made by no known user: use a session, or a key made by a team member")
}

// teamCall runs fn with the team service and the acting user, writing
// any error.
func (s *Server) teamCall(w http.ResponseWriter, r *http.Request, fn func(svc *teamsvc.Service, user string) error) {
	svc, err := s.teams()
	if err == nil {
		var user string
		if user, err = actor(r); err == nil {
			err = fn(svc, user)
		}
	}
	if err != nil {
		s.writeError(w, r, err)
	}
}

type teamBody struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      store.Role `json:"role,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

type memberBody struct {
	UserID string     `json:"user_id"`
	Email  string     `json:"email"`
	Name   string     `json:"name"`
	Role   store.Role `json:"role"`
}

type invitationBody struct {
	ID        string     `json:"id"`
	TeamID    string     `json:"team_id"`
	Email     string     `json:"email"`
	Role      store.Role `json:"role"`
	InvitedBy string     `json:"invited_by,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
}

type settingsBody struct {
	MembersMintKeys bool `json:"members_mint_keys"`
}

func publicInvitation(inv store.Invitation) invitationBody {
	return invitationBody{ID: inv.ID, TeamID: inv.TeamID, Email: inv.Email, Role: inv.Role, InvitedBy: inv.InvitedBy,
		CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt}
}

func (s *Server) listTeams(w http.ResponseWriter, r *http.Request) {
	s.teamCall(w, r, func(svc *teamsvc.Service, user string) error {
		ms, err := svc.List(r.Context(), user)
		if err != nil {
			return err
		}
		out := struct {
			Teams []teamBody `json:"teams"`
		}{Teams: []teamBody{}}
		for _, m := range ms {
			out.Teams = append(out.Teams, teamBody{ID: m.Team.ID, Name: m.Team.Name, Role: m.Role, CreatedAt: m.Team.CreatedAt})
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

func (s *Server) createTeam(w http.ResponseWriter, r *http.Request) {
	s.teamCall(w, r, func(svc *teamsvc.Service, user string) error {
		var req struct {
			Name string `json:"name"`
		}
		if err := s.decodeJSON(w, r, &req, false); err != nil {
			return err
		}
		t, err := svc.Create(r.Context(), user, req.Name)
		e := teamEntry("team.create", t.ID, nil)
		e.TeamID = t.ID
		s.record(r, e, err)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, teamBody{ID: t.ID, Name: t.Name, Role: store.RoleOwner, CreatedAt: t.CreatedAt})
		return nil
	})
}

// switchTeam makes the session act for another of its user's teams.
func (s *Server) switchTeam(w http.ResponseWriter, r *http.Request) {
	sess, err := sessionOf(r, "switching teams")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req struct {
		TeamID string `json:"team_id"`
	}
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.store.SetSessionTeam(r.Context(), sess.UserID, sess.ID, req.TeamID); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		TeamID string `json:"team_id"`
	}{req.TeamID})
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) {
	s.teamCall(w, r, func(svc *teamsvc.Service, user string) error {
		ms, err := svc.Members(r.Context(), user, r.PathValue("id"))
		if err != nil {
			return err
		}
		out := struct {
			Members []memberBody `json:"members"`
		}{Members: []memberBody{}}
		for _, m := range ms {
			out.Members = append(out.Members, memberBody{UserID: m.User.ID, Email: m.User.Email, Name: m.User.Name, Role: m.Role})
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

func (s *Server) setMemberRole(w http.ResponseWriter, r *http.Request) {
	s.teamCall(w, r, func(svc *teamsvc.Service, user string) error {
		var req struct {
			Role store.Role `json:"role"`
		}
		if err := s.decodeJSON(w, r, &req, false); err != nil {
			return err
		}
		err := svc.SetRole(r.Context(), user, r.PathValue("id"), r.PathValue("user"), req.Role)
		s.record(r, pathTeamEntry(r, "member.update", r.PathValue("user"), map[string]string{"role": string(req.Role)}), err)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, memberBody{UserID: r.PathValue("user"), Role: req.Role})
		return nil
	})
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	s.teamCall(w, r, func(svc *teamsvc.Service, user string) error {
		err := svc.Remove(r.Context(), user, r.PathValue("id"), r.PathValue("user"))
		s.record(r, pathTeamEntry(r, "member.remove", r.PathValue("user"), nil), err)
		if err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// transferTeam hands a team to another member; the owner becomes an admin.
func (s *Server) transferTeam(w http.ResponseWriter, r *http.Request) {
	s.teamCall(w, r, func(svc *teamsvc.Service, user string) error {
		var req struct {
			UserID string `json:"user_id"`
		}
		if err := s.decodeJSON(w, r, &req, false); err != nil {
			return err
		}
		err := svc.Transfer(r.Context(), user, r.PathValue("id"), req.UserID)
		// The resource is the new owner: a purge of that user clears it.
		s.record(r, pathTeamEntry(r, "member.transfer_ownership", req.UserID, nil), err)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, struct {
			TeamID  string `json:"team_id"`
			OwnerID string `json:"owner_id"`
		}{r.PathValue("id"), req.UserID})
		return nil
	})
}

func (s *Server) invite(w http.ResponseWriter, r *http.Request) {
	s.teamCall(w, r, func(svc *teamsvc.Service, user string) error {
		var req struct {
			Email string     `json:"email"`
			Role  store.Role `json:"role"`
		}
		if err := s.decodeJSON(w, r, &req, false); err != nil {
			return err
		}
		if req.Role == "" {
			req.Role = store.RoleMember
		}
		inv, err := svc.Invite(r.Context(), user, r.PathValue("id"), req.Email, req.Role)
		s.record(r, pathTeamEntry(r, "invitation.create", inv.ID, map[string]string{"email": req.Email, "role": string(req.Role)}), err)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, publicInvitation(inv))
		return nil
	})
}

func (s *Server) listInvitations(w http.ResponseWriter, r *http.Request) {
	s.teamCall(w, r, func(svc *teamsvc.Service, user string) error {
		invs, err := svc.Invitations(r.Context(), user, r.PathValue("id"))
		if err != nil {
			return err
		}
		out := struct {
			Invitations []invitationBody `json:"invitations"`
		}{Invitations: []invitationBody{}}
		for _, inv := range invs {
			out.Invitations = append(out.Invitations, publicInvitation(inv))
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

func (s *Server) withdrawInvitation(w http.ResponseWriter, r *http.Request) {
	s.teamCall(w, r, func(svc *teamsvc.Service, user string) error {
		err := svc.Withdraw(r.Context(), user, r.PathValue("id"), r.PathValue("inv"))
		s.record(r, pathTeamEntry(r, "invitation.withdraw", r.PathValue("inv"), nil), err)
		if err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// acceptInvitation joins the session's user to the invitation's team; the
// session keeps acting for its team (switch with /v1/auth/switch).
func (s *Server) acceptInvitation(w http.ResponseWriter, r *http.Request) {
	svc, err := s.teams()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sess, err := sessionOf(r, "accepting an invitation")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req struct {
		Token string `json:"token"`
	}
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := s.store.GetUser(r.Context(), sess.UserID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	inv, err := svc.Accept(r.Context(), u, req.Token)
	e := teamEntry("invitation.accept", inv.ID, map[string]string{"role": string(inv.Role)})
	e.TeamID = inv.TeamID // "" when it failed: the session's team
	s.record(r, e, err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, memberBody{UserID: u.ID, Email: u.Email, Name: u.Name, Role: inv.Role})
}

func (s *Server) getTeamSettings(w http.ResponseWriter, r *http.Request) {
	s.teamCall(w, r, func(svc *teamsvc.Service, user string) error {
		p, err := svc.Policy(r.Context(), user, r.PathValue("id"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, settingsBody{MembersMintKeys: p.MembersMintKeys})
		return nil
	})
}

func (s *Server) putTeamSettings(w http.ResponseWriter, r *http.Request) {
	s.teamCall(w, r, func(svc *teamsvc.Service, user string) error {
		var req settingsBody
		if err := s.decodeJSON(w, r, &req, false); err != nil {
			return err
		}
		err := svc.SetPolicy(r.Context(), user, r.PathValue("id"), store.TeamPolicy{MembersMintKeys: req.MembersMintKeys})
		s.record(r, pathTeamEntry(r, "team.update_settings", r.PathValue("id"), map[string]string{"members_mint_keys": strconv.FormatBool(req.MembersMintKeys)}), err)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, req)
		return nil
	})
}
