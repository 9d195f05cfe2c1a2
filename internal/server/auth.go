package server

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"nestbox.dev/internal/account"
	"nestbox.dev/internal/apikey"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

type principalKey struct{}

// principal is who a request acts for: a team, through one of its keys or
// a user's session.
type principal struct {
	TeamID string
	// Key is the API key, when one authenticated the request.
	Key store.APIKey
	// Session and UserID are the session and its user, when a session
	// authenticated the request.
	Session *store.Session
	UserID  string
}

// touchEvery limits how often a key's last use is written.
const touchEvery = time.Minute

// authenticated wraps h so that it runs only with a valid API key or a
// session's access token (X-API-Key, or Authorization: Bearer), the team
// it acts for in the context.
func (s *Server) authenticated(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}

func (s *Server) authenticate(r *http.Request) (principal, error) {
	key := r.Header.Get("X-API-Key")
	if key == "" {
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			key = strings.TrimSpace(v)
		}
	}
	if key == "" {
		return principal{}, errdefs.Unauthenticated("an API key is required (X-API-Key header)")
	}
	if account.IsSessionToken(key) {
		return s.authenticateSession(r, key)
	}
	hash, err := apikey.Parse(key)
	if err != nil {
		return principal{}, err
	}
	k, cached, epoch := s.keys.get(hash)
	if !cached {
		if k, err = s.store.APIKeyByHash(r.Context(), hash); err != nil {
			if errdefs.HTTPStatus(err) == http.StatusNotFound {
				return principal{}, errdefs.Unauthenticated("invalid API key")
			}
			return principal{}, err
		}
		s.keys.put(hash, k, epoch)
	}
	now := s.cfg.Now().UTC()
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) > touchEvery {
		if err := s.store.TouchAPIKey(r.Context(), k.ID, now); err != nil {
			s.log.Warn("record API key use", "key", k.ID, "err", err)
		} else {
			s.keys.touched(hash, now)
		}
	}
	return principal{TeamID: k.TeamID, Key: k}, nil
}

// authenticateSession finds the live session of an access token.
func (s *Server) authenticateSession(r *http.Request, token string) (principal, error) {
	acc, err := s.accounts()
	if err != nil {
		return principal{}, errdefs.Unauthenticated("sessions are not enabled: use an API key")
	}
	sess, err := acc.Authenticate(r.Context(), token)
	if err != nil {
		return principal{}, err
	}
	return principal{TeamID: sess.TeamID, Session: &sess, UserID: sess.UserID}, nil
}

// creator is the user who acts in an authenticated request: a session's
// user, or who made the API key ("" if nobody known).
func creator(r *http.Request) string {
	p, _ := r.Context().Value(principalKey{}).(principal)
	if p.Session != nil {
		return p.UserID
	}
	return p.Key.CreatedBy
}

// team is the team of an authenticated request.
func team(r *http.Request) string {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p.TeamID
}

// hostAuthenticated wraps h so that it runs only for host agents presenting
// a host token; the host the token belongs to is in the request's context
// (authenticatedHost).
func (s *Server) hostAuthenticated(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if id, named, ok := s.fleetHost(r); named {
			if !ok {
				s.writeError(w, r, errdefs.Unauthenticated("a valid host token for host %s is required", id))
				return
			}
			h(w, r.WithContext(context.WithValue(r.Context(), hostKey{}, id)))
			return
		}
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		ok := false
		for _, want := range s.cfg.HostTokens {
			// Every token is compared, so the time taken says nothing of
			// which one nearly matched.
			if want != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1 {
				ok = true
			}
		}
		if !ok || s.cfg.HostID == "" {
			s.writeError(w, r, errdefs.Unauthenticated("a valid host token is required"))
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), hostKey{}, s.cfg.HostID)))
	}
}

type hostKey struct{}

// authenticatedHost is the host whose token authenticated r.
func authenticatedHost(r *http.Request) string {
	id, _ := r.Context().Value(hostKey{}).(string)
	return id
}
