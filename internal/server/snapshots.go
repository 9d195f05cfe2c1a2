package server

import (
	"context"
	"net/http"
	"strconv"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/lifecycle"
)

// createSnapshot is POST /v1/capsules/{id}/snapshots: 202 with the
// snapshot creating; with ?wait=true, 201 once it is ready (or the error
// that failed it: its row is gone then), 202 if it was not by ?timeout.
func (s *Server) createSnapshot(w http.ResponseWriter, r *http.Request) {
	var req nestbox.CreateSnapshotRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	wait, d, err := waitParams(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sn, err := s.life.Snapshot(r.Context(), team(r), r.PathValue("id"), lifecycle.SnapshotOptions{Name: req.Name, Pause: req.Pause})
	s.record(r, teamEntry("snapshot.create", sn.ID, map[string]string{"capsule_id": r.PathValue("id"), "name": sn.Name}), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !wait {
		writeJSON(w, http.StatusAccepted, sn)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	defer cancel()
	got, err := s.life.WaitSnapshot(ctx, team(r), sn.ID)
	switch {
	case err != nil:
		s.writeError(w, r, err)
	case got.Status == nestbox.SnapshotCreating:
		writeJSON(w, http.StatusAccepted, got)
	default:
		writeJSON(w, http.StatusCreated, got)
	}
}

// listSnapshots is GET /v1/snapshots: ?capsule_id, ?name ("name" or
// "name:tag"), ?limit (1 to 100, default 100), ?cursor.
func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := lifecycle.SnapshotFilter{CapsuleID: q.Get("capsule_id"), Name: q.Get("name"), Cursor: q.Get("cursor")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > lifecycle.MaxSnapshotPage {
			s.writeError(w, r, errdefs.Invalid("limit %q: want 1 to %d", v, lifecycle.MaxSnapshotPage))
			return
		}
		f.Limit = n
	}
	list, err := s.life.ListSnapshots(r.Context(), team(r), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// getSnapshot is GET /v1/snapshots/{id} (its ID or name); ?wait=true
// waits (at most ?timeout) while it is being created.
func (s *Server) getSnapshot(w http.ResponseWriter, r *http.Request) {
	wait, d, err := waitParams(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var sn nestbox.Snapshot
	if wait {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		sn, err = s.life.WaitSnapshot(ctx, team(r), r.PathValue("id"))
	} else {
		sn, err = s.life.GetSnapshot(r.Context(), team(r), r.PathValue("id"))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sn)
}

// deleteSnapshot is DELETE /v1/snapshots/{id} (its ID or name): 204 once
// it is gone from its host and the store; 409 while it is being created
// or backs a template.
func (s *Server) deleteSnapshot(w http.ResponseWriter, r *http.Request) {
	err := s.life.DeleteSnapshot(r.Context(), team(r), r.PathValue("id"))
	s.record(r, teamEntry("snapshot.delete", r.PathValue("id"), nil), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// createTemplate is POST /v1/templates {name, from_snapshot}: 201 with the
// team's new template.
func (s *Server) createTemplate(w http.ResponseWriter, r *http.Request) {
	var req nestbox.CreateTemplateRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.life.CreateTemplate(r.Context(), team(r), req.Name, req.FromSnapshot)
	s.record(r, teamEntry("template.create", req.Name, map[string]string{"from_snapshot": req.FromSnapshot}), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

// deleteTemplate is DELETE /v1/templates/{name}: 204; the snapshot stays.
func (s *Server) deleteTemplate(w http.ResponseWriter, r *http.Request) {
	err := s.life.DeleteTemplate(r.Context(), team(r), r.PathValue("name"))
	s.record(r, teamEntry("template.delete", r.PathValue("name"), nil), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// setTemplatePool is PUT /v1/templates/{name}/pool {size}: the warm pool
// of a template made from a snapshot; 200 with the template.
func (s *Server) setTemplatePool(w http.ResponseWriter, r *http.Request) {
	var req nestbox.TemplatePoolRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	name := r.PathValue("name")
	t, err := s.life.SetTemplatePool(r.Context(), team(r), name, req.Size)
	s.record(r, teamEntry("template.pool", name, map[string]string{"size": strconv.Itoa(req.Size)}), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}
