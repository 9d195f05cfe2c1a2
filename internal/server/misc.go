package server

import (
	_ "embed"
	"net/http"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/lifecycle"
)

//go:embed openapi.yaml
var openAPISpec []byte

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(openAPISpec)
}

func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request) {
	ts, err := s.life.TeamTemplates(r.Context(), team(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ts == nil {
		ts = []nestbox.Template{}
	}
	writeJSON(w, http.StatusOK, nestbox.TemplateList{Templates: ts})
}

func (s *Server) hostEvent(w http.ResponseWriter, r *http.Request) {
	var ev lifecycle.HostEvent
	if err := s.decodeJSON(w, r, &ev, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	// A host reports on its own capsules only.
	host := authenticatedHost(r)
	if ev.HostID != "" && ev.HostID != host {
		s.writeError(w, r, errdefs.Permission("the host token is not host %q's", ev.HostID))
		return
	}
	ev.HostID = host
	if err := s.life.HandleHostEvent(r.Context(), ev); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
