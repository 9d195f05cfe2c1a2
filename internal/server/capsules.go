package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/capsulestate"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// Bounds of ?wait on GET /v1/capsules/{id}.
const (
	defaultWait = 60 * time.Second
	maxWait     = 10 * time.Minute
)

func (s *Server) createCapsule(w http.ResponseWriter, r *http.Request) {
	var req nestbox.CreateCapsuleRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.life.Create(r.Context(), team(r), req)
	s.record(r, teamEntry("capsule.create", c.ID, nil), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/capsules/"+c.ID)
	writeJSON(w, http.StatusAccepted, c)
}

func (s *Server) listCapsules(w http.ResponseWriter, r *http.Request) {
	f, err := parseListQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.life.List(r.Context(), team(r), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if list.Capsules == nil {
		list.Capsules = []nestbox.Capsule{}
	}
	writeJSON(w, http.StatusOK, list)
}

// parseListQuery reads ?status=a,b&metadata.K=V&limit=N&cursor=C.
func parseListQuery(r *http.Request) (store.CapsuleFilter, error) {
	var f store.CapsuleFilter
	for key, vals := range r.URL.Query() {
		v := vals[len(vals)-1]
		switch {
		case key == "status":
			for _, st := range strings.Split(v, ",") {
				st := nestbox.Status(strings.TrimSpace(st))
				if !validStatus(st) {
					return f, errdefs.Invalid("status %q: want one of %v", st, capsulestate.All())
				}
				f.Statuses = append(f.Statuses, st)
			}
		case strings.HasPrefix(key, "metadata."):
			if f.Metadata == nil {
				f.Metadata = map[string]string{}
			}
			f.Metadata[strings.TrimPrefix(key, "metadata.")] = v
		case key == "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				return f, errdefs.Invalid("limit %q: want 1 to 1000", v)
			}
			f.Limit = n
		case key == "cursor":
			f.Cursor = v
		default:
			return f, errdefs.Invalid("unknown query parameter %q", key)
		}
	}
	return f, nil
}

func validStatus(st nestbox.Status) bool { return capsulestate.Known(st) }

func (s *Server) getCapsule(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	want := nestbox.Status(q.Get("wait"))
	if want == "" {
		c, err := s.life.Get(r.Context(), team(r), id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, c)
		return
	}
	if !validStatus(want) {
		s.writeError(w, r, errdefs.Invalid("wait %q: want a capsule status", want))
		return
	}
	d, err := waitTimeout(q.Get("timeout"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	defer cancel()
	c, err := s.life.Wait(ctx, team(r), id, want)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) deleteCapsule(w http.ResponseWriter, r *http.Request) {
	c, err := s.life.Destroy(r.Context(), team(r), r.PathValue("id"))
	s.record(r, teamEntry("capsule.destroy", r.PathValue("id"), nil), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, c)
}

func (s *Server) setTimeout(w http.ResponseWriter, r *http.Request) {
	var req nestbox.SetTimeoutRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.life.SetTimeout(r.Context(), team(r), r.PathValue("id"), time.Duration(req.TimeoutSeconds)*time.Second)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) capsuleMetrics(w http.ResponseWriter, r *http.Request) {
	m, err := s.life.Metrics(r.Context(), team(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) capsuleEvents(w http.ResponseWriter, r *http.Request) {
	evs, err := s.life.Events(r.Context(), team(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if evs == nil {
		evs = []nestbox.CapsuleEvent{}
	}
	writeJSON(w, http.StatusOK, nestbox.CapsuleEventList{Events: evs})
}
