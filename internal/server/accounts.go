package server

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"nestbox.dev/internal/account"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// The account routes: sign-up, verification, log-in, refresh, log-out,
// password reset and deleting one's own account. The logic is
// internal/account's; here are decoding, rate limits and encoding.

// Defaults of the rate limits on log-in and password reset.
const (
	defaultAuthPerAddress = 10 // attempts per minute per client address
	defaultAuthPerAccount = 5  // attempts per minute per email
)

// authLimits bounds log-in and reset attempts per client address and per
// account, each an ipLimiter: an account's bucket is keyed by an IPv6 /64
// made from its email's hash, so one limiter type serves both.
type authLimits struct {
	byAddress, byAccount *ipLimiter
}

// newAuthLimits returns limits of perAddress and perAccount attempts a
// minute (burst the same); zero means the default, negative no limit.
// Buckets refill within a minute, limiterIdle: an idle one is dropped
// only when full.
func newAuthLimits(perAddress, perAccount int, now func() time.Time) authLimits {
	mk := func(n, def int) *ipLimiter {
		if n < 0 {
			return nil
		}
		if n == 0 {
			n = def
		}
		return newIPLimiter(float64(n)/60, n, now)
	}
	return authLimits{byAddress: mk(perAddress, defaultAuthPerAddress), byAccount: mk(perAccount, defaultAuthPerAccount)}
}

// allow takes a token from the client's and the account's buckets; it
// fails with ErrExhausted (429) if either is empty.
func (l authLimits) allow(r *http.Request, email string) error {
	if !l.byAddress.allow(clientIP(r)) {
		return fmt.Errorf("too many attempts from this address; wait a minute: %w", errdefs.ErrExhausted)
	}
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	var a [16]byte
	copy(a[:8], sum[:8])
	if !l.byAccount.allow(netip.AddrFrom16(a)) {
		return fmt.Errorf("too many attempts for this account; wait a minute: %w", errdefs.ErrExhausted)
	}
	return nil
}

// accounts returns the account service, or an error if this control plane
// runs without accounts.
func (s *Server) accounts() (*account.Service, error) {
	if s.cfg.Accounts == nil {
		return nil, errdefs.Unimplemented("accounts are not enabled on this control plane")
	}
	return s.cfg.Accounts, nil
}

type signUpRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name,omitempty"`
}

type credentialsRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type emailRequest struct {
	Email string `json:"email"`
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

type resetConfirmRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

type userBody struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Admin     bool      `json:"admin"`
	CreatedAt time.Time `json:"created_at"`
}

type tokensBody struct {
	AccessToken      string    `json:"access_token"`
	RefreshToken     string    `json:"refresh_token"`
	ExpiresAt        time.Time `json:"expires_at"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
	UserID           string    `json:"user_id"`
	TeamID           string    `json:"team_id"`
}

type acceptedBody struct {
	Status string `json:"status"`
}

func publicUser(u store.User) userBody {
	return userBody{ID: u.ID, Email: u.Email, Name: u.Name, Admin: u.Admin, CreatedAt: u.CreatedAt}
}

func publicTokens(t account.Tokens) tokensBody {
	return tokensBody{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, ExpiresAt: t.ExpiresAt,
		RefreshExpiresAt: t.RefreshExpiresAt, UserID: t.Session.UserID, TeamID: t.Session.TeamID}
}

func (s *Server) signUp(w http.ResponseWriter, r *http.Request) {
	acc, err := s.accounts()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req signUpRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.authLimits.allow(r, req.Email); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := acc.SignUp(r.Context(), req.Email, req.Password, req.Name); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, acceptedBody{Status: "verification_sent"})
}

func (s *Server) verifyEmail(w http.ResponseWriter, r *http.Request) {
	acc, err := s.accounts()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := acc.Verify(r.Context(), r.URL.Query().Get("token"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, publicUser(u))
}

func (s *Server) logIn(w http.ResponseWriter, r *http.Request) {
	acc, err := s.accounts()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req credentialsRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.authLimits.allow(r, req.Email); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := acc.LogIn(r.Context(), req.Email, req.Password)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, publicTokens(t))
}

func (s *Server) refreshSession(w http.ResponseWriter, r *http.Request) {
	acc, err := s.accounts()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req refreshRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := acc.Refresh(r.Context(), req.RefreshToken)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, publicTokens(t))
}

// sessionOf is the session of a request authenticated by one, else an
// error saying that the route wants a user's session, not an API key.
func sessionOf(r *http.Request, what string) (store.Session, error) {
	p, _ := r.Context().Value(principalKey{}).(principal)
	if p.Session == nil {
		return store.Session{}, errdefs.Invalid("%s needs a user's session (log in), not an API key", what)
	}
	return *p.Session, nil
}

func (s *Server) logOut(w http.ResponseWriter, r *http.Request) {
	acc, err := s.accounts()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sess, err := sessionOf(r, "log-out")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := acc.LogOut(r.Context(), sess); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) requestReset(w http.ResponseWriter, r *http.Request) {
	acc, err := s.accounts()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req emailRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.authLimits.allow(r, req.Email); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := acc.RequestReset(r.Context(), req.Email); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, acceptedBody{Status: "reset_sent_if_registered"})
}

func (s *Server) confirmReset(w http.ResponseWriter, r *http.Request) {
	acc, err := s.accounts()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req resetConfirmRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := acc.ResetPassword(r.Context(), req.Token, req.Password); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type deletedBody struct {
	Status     string    `json:"status"`
	PurgeAfter time.Time `json:"purge_after"`
}

func (s *Server) deleteMe(w http.ResponseWriter, r *http.Request) {
	acc, err := s.accounts()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sess, err := sessionOf(r, "deleting an account")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	after, err := acc.Delete(r.Context(), sess.UserID)
	s.keysRevoked(r.Context()) // the user's keys are revoked (even by a Delete that failed later)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, deletedBody{Status: string(store.AccountDeleted), PurgeAfter: after})
}

// changePassword sets a new password for the session's user, who gives
// the current one; every session of the user ends, this one too.
func (s *Server) changePassword(w http.ResponseWriter, r *http.Request) {
	acc, err := s.accounts()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sess, err := sessionOf(r, "changing a password")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	// A stolen session guessing the password is limited like a log-in.
	u, err := s.store.GetUser(r.Context(), sess.UserID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.authLimits.allow(r, u.Email); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := acc.ChangePassword(r.Context(), sess.UserID, req.Current, req.New); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
