package envd

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"time"

	"nestbox.dev/internal/envd/identity"
	"nestbox.dev/internal/envd/settings"
)

// maxInitBody caps the /init request body; env vars and a token fit easily.
const maxInitBody = 1 << 20

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleEnvs(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.settings.EnvVars())
}

// initRequest is the body of POST /init. Fields of E2B's orchestrator that
// Nestbox does not use (volume mounts, hyperloop IP, CA bundle) are ignored.
type initRequest struct {
	EnvVars        map[string]string `json:"envVars"`
	AccessToken    *string           `json:"accessToken"`
	Timestamp      *time.Time        `json:"timestamp"`
	DefaultUser    string            `json:"defaultUser"`
	DefaultWorkdir string            `json:"defaultWorkdir"`
}

func (s *Server) handleInit(w http.ResponseWriter, r *http.Request) {
	var req initRequest
	body := http.MaxBytesReader(w, r.Body, maxInitBody)
	if err := json.NewDecoder(body).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "init body over 1 MiB")
			return
		}
		writeError(w, http.StatusBadRequest, "invalid init body: "+err.Error())
		return
	}
	for k := range req.EnvVars {
		if k == "" || containsAny(k, "=\x00") {
			writeError(w, http.StatusBadRequest, "invalid env var name "+quote(k))
			return
		}
	}
	if req.DefaultUser != "" {
		if _, err := identity.Lookup(req.DefaultUser); err != nil {
			writeError(w, http.StatusBadRequest, "unknown default user "+quote(req.DefaultUser))
			return
		}
	}
	if req.DefaultWorkdir != "" && !filepath.IsAbs(req.DefaultWorkdir) {
		writeError(w, http.StatusBadRequest, "default workdir must be absolute: "+quote(req.DefaultWorkdir))
		return
	}
	u := settings.Update{EnvVars: req.EnvVars, AccessToken: req.AccessToken, DefaultUser: req.DefaultUser, DefaultWorkdir: req.DefaultWorkdir}
	if req.Timestamp != nil {
		u.Timestamp = *req.Timestamp
	}
	if !s.settings.Apply(u) {
		s.log.Info("ignored stale init", "timestamp", u.Timestamp)
	}
	// After a restore, this call is the post-restore initialisation too.
	s.recoverAfterRestore(r.Context())
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	m, err := s.metrics.sample(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "read metrics: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func containsAny(s, chars string) bool {
	for _, c := range chars {
		for _, d := range s {
			if c == d {
				return true
			}
		}
	}
	return false
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
