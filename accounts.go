package nestbox

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// Accounts and teams: sign-up, log-in sessions and the teams a user acts
// in (docs/api.md, "Accounts and teams").

// NewPublic returns a client for the routes that take no credential:
// SignUp, LogIn and Refresh. Its URL is looked up as New's is (Config.URL,
// $NESTBOX_URL, the credentials file); Config.APIKey, if set, is sent as
// with New, else no key is.
func NewPublic(cfg Config) (*Client, error) {
	raw := firstNonEmpty(cfg.URL, os.Getenv(EnvURL))
	if raw == "" {
		if fileURL, _, err := LoadCredentials(os.Getenv(EnvDataDir)); err == nil {
			raw = fileURL
		}
	}
	if raw == "" {
		return nil, fmt.Errorf("%w: no URL: set Config.URL or $%s", ErrInvalid, EnvURL)
	}
	return newClient(raw, strings.TrimSpace(cfg.APIKey), cfg)
}

// SignUpRequest is the body of POST /v1/auth/signup.
type SignUpRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name,omitempty"`
}

// Tokens are a log-in session's: the access token, sent as an API key is
// (it expires at ExpiresAt), and the refresh token that gets new ones
// once (until RefreshExpiresAt). UserID is the session's user, TeamID the
// team it acts for.
type Tokens struct {
	AccessToken      string    `json:"access_token"`
	RefreshToken     string    `json:"refresh_token"`
	ExpiresAt        time.Time `json:"expires_at"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
	UserID           string    `json:"user_id"`
	TeamID           string    `json:"team_id"`
}

// Team is a team of the acting user, with the user's role in it.
type Team struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      string    `json:"role,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Member is a user in a team.
type Member struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
	Name   string `json:"name"`
	Role   string `json:"role"`
}

// Invitation is a pending invitation to a team; its token goes only in
// the mail to Email.
type Invitation struct {
	ID        string    `json:"id"`
	TeamID    string    `json:"team_id"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	InvitedBy string    `json:"invited_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// SignUp creates an account; the control plane mails a verification link
// to req.Email, and the account logs in once the link is followed.
func (c *Client) SignUp(ctx context.Context, req SignUpRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/auth/signup", nil, req, nil)
}

// LogIn starts a session of the account with this email and password.
func (c *Client) LogIn(ctx context.Context, email, password string) (Tokens, error) {
	var t Tokens
	err := c.do(ctx, http.MethodPost, "/v1/auth/login", nil, map[string]string{"email": email, "password": password}, &t)
	return t, err
}

// Refresh trades a session's refresh token for new tokens; a refresh
// token works once.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	var t Tokens
	err := c.do(ctx, http.MethodPost, "/v1/auth/refresh", nil, map[string]string{"refresh_token": refreshToken}, &t)
	return t, err
}

// LogOut ends the session whose access token is the client's key.
func (c *Client) LogOut(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/auth/logout", nil, nil, nil)
}

// Teams lists the acting user's teams (a session's user, or who made the
// API key) with the user's role in each.
func (c *Client) Teams(ctx context.Context) ([]Team, error) {
	var l struct {
		Teams []Team `json:"teams"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/teams", nil, nil, &l)
	return l.Teams, err
}

// SwitchTeam makes the client's session act for another of its user's
// teams.
func (c *Client) SwitchTeam(ctx context.Context, teamID string) error {
	var out struct {
		TeamID string `json:"team_id"`
	}
	return c.do(ctx, http.MethodPost, "/v1/auth/switch", nil, map[string]string{"team_id": teamID}, &out)
}

// Members lists a team's members, the owner first.
func (c *Client) Members(ctx context.Context, teamID string) ([]Member, error) {
	var l struct {
		Members []Member `json:"members"`
	}
	err := c.do(ctx, http.MethodGet, pathf("/v1/teams/%s/members", teamID), nil, nil, &l)
	return l.Members, err
}

// Invite mails an invitation to join a team to email, with role admin or
// member ("" means member).
func (c *Client) Invite(ctx context.Context, teamID, email, role string) (Invitation, error) {
	var inv Invitation
	body := map[string]string{"email": email}
	if role != "" {
		body["role"] = role
	}
	err := c.do(ctx, http.MethodPost, pathf("/v1/teams/%s/invitations", teamID), nil, body, &inv)
	return inv, err
}

// IsSessionToken reports whether a credential is a session's access token
// (nbs_...) rather than an API key.
func IsSessionToken(credential string) bool { return strings.HasPrefix(credential, "nbs_") }
