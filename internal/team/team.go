// Package team is teams and their members: creating teams, roles (owner,
// admin, member), invitations by a mailed link, role changes and
// removals, and a team's settings, such as who may mint API keys. Every
// call names the acting user and checks that user's role in the team
// here, not in the HTTP layer. The owner is never demoted or removed. The
// HTTP layer (internal/server) imports it.
package team

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"nestbox.dev/internal/account"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/mail"
	"nestbox.dev/internal/store"
)

// Defaults of Config's limits and durations.
const (
	DefaultInviteTTL  = 7 * 24 * time.Hour
	DefaultMaxMembers = 100
	DefaultMaxPending = 100
	DefaultMaxOwned   = 10
	maxTeamName       = 100
)

// Config configures a Service. Store, Mailer and LinkKey are required.
type Config struct {
	Store  store.Store
	Mailer mail.Mailer
	// LinkKey signs invitation links (the account service's key).
	LinkKey []byte
	// PublicURL is where users reach the API; "" means
	// http://localhost:3000.
	PublicURL string
	Logger    *slog.Logger
	Now       func() time.Time
	// InviteTTL is how long an invitation is valid; zero means 7 days.
	InviteTTL time.Duration
	// MaxMembers, MaxPending and MaxOwned bound a team's members, its
	// pending invitations and the teams one user owns; zero means the
	// defaults above.
	MaxMembers, MaxPending, MaxOwned int
}

// Service runs teams. It is safe for concurrent use.
type Service struct {
	cfg   Config
	store store.Store
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Mailer == nil {
		return nil, errors.New("team: Store and Mailer are required")
	}
	if len(cfg.LinkKey) < 32 {
		return nil, errors.New("team: LinkKey must have at least 32 bytes")
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://localhost:3000"
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.InviteTTL == 0 {
		cfg.InviteTTL = DefaultInviteTTL
	}
	for _, l := range []struct {
		v   *int
		def int
	}{{&cfg.MaxMembers, DefaultMaxMembers}, {&cfg.MaxPending, DefaultMaxPending}, {&cfg.MaxOwned, DefaultMaxOwned}} {
		if *l.v == 0 {
			*l.v = l.def
		}
	}
	return &Service{cfg: cfg, store: cfg.Store}, nil
}

// randText is 16 random characters for IDs.
func randText() string { return rand.Text()[:16] }

// role is actor's role in teamID. A team the actor is not in is not found,
// as if it did not exist: no one learns of another's teams.
func (s *Service) role(ctx context.Context, teamID, actor string) (store.Role, error) {
	r, err := s.store.MemberRole(ctx, teamID, actor)
	if errors.Is(err, errdefs.ErrNotFound) {
		return "", errdefs.NotFound("team %s not found", teamID)
	}
	return r, err
}

// manager checks that actor is the owner or an admin of teamID.
func (s *Service) manager(ctx context.Context, teamID, actor string) error {
	r, err := s.role(ctx, teamID, actor)
	if err != nil {
		return err
	}
	if r != store.RoleOwner && r != store.RoleAdmin {
		return errdefs.Permission("only the team's owner and admins may do that")
	}
	return nil
}

// Create makes a team that actor owns.
func (s *Service) Create(ctx context.Context, actor, name string) (store.Team, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > maxTeamName || strings.ContainsAny(name, "\r\n") {
		return store.Team{}, errdefs.Invalid("name: want 1 to %d characters on one line", maxTeamName)
	}
	t := store.Team{ID: "team_" + strings.ToLower(randText()), Name: name, CreatedAt: s.cfg.Now().UTC()}
	if err := s.store.CreateOwnedTeam(ctx, t, actor, s.cfg.MaxOwned); err != nil {
		return store.Team{}, err
	}
	return t, nil
}

// List lists actor's teams and roles, oldest first.
func (s *Service) List(ctx context.Context, actor string) ([]store.Membership, error) {
	return s.store.TeamsOfUser(ctx, actor)
}

// Members lists a team's members, for any member.
func (s *Service) Members(ctx context.Context, actor, teamID string) ([]store.Member, error) {
	if _, err := s.role(ctx, teamID, actor); err != nil {
		return nil, err
	}
	return s.store.Members(ctx, teamID)
}

// SetRole makes a member an admin or a member, for the owner and admins.
func (s *Service) SetRole(ctx context.Context, actor, teamID, userID string, role store.Role) error {
	if err := s.manager(ctx, teamID, actor); err != nil {
		return err
	}
	return s.store.SetMemberRole(ctx, teamID, userID, role)
}

// Remove takes a member out of a team: the owner and admins may remove
// anyone but the owner, and any member may leave.
func (s *Service) Remove(ctx context.Context, actor, teamID, userID string) error {
	if actor != userID {
		if err := s.manager(ctx, teamID, actor); err != nil {
			return err
		}
	} else if _, err := s.role(ctx, teamID, actor); err != nil {
		return err
	}
	return s.store.RemoveMember(ctx, teamID, userID)
}

// Transfer makes a member the team's owner, for the owner alone, who
// becomes an admin.
func (s *Service) Transfer(ctx context.Context, actor, teamID, to string) error {
	r, err := s.role(ctx, teamID, actor)
	if err != nil {
		return err
	}
	if r != store.RoleOwner {
		return errdefs.Permission("only the team's owner may hand it over")
	}
	return s.store.TransferOwnership(ctx, teamID, actor, to)
}

// Policy returns a team's settings, for any member.
func (s *Service) Policy(ctx context.Context, actor, teamID string) (store.TeamPolicy, error) {
	if _, err := s.role(ctx, teamID, actor); err != nil {
		return store.TeamPolicy{}, err
	}
	return s.store.TeamPolicy(ctx, teamID)
}

// SetPolicy replaces a team's settings, for the owner and admins.
func (s *Service) SetPolicy(ctx context.Context, actor, teamID string, p store.TeamPolicy) error {
	if err := s.manager(ctx, teamID, actor); err != nil {
		return err
	}
	return s.store.SetTeamPolicy(ctx, teamID, p)
}

// CanMintKeys says whether userID may make API keys for teamID: the owner
// and admins may, members only where the team's settings allow it.
func (s *Service) CanMintKeys(ctx context.Context, teamID, userID string) error {
	r, err := s.role(ctx, teamID, userID)
	if err != nil {
		return errdefs.Permission("user %s is not a member of team %s", userID, teamID)
	}
	if r == store.RoleOwner || r == store.RoleAdmin {
		return nil
	}
	p, err := s.store.TeamPolicy(ctx, teamID)
	if err != nil {
		return err
	}
	if !p.MembersMintKeys {
		return errdefs.Permission("members of team %s may not make API keys (its owner or an admin can allow it)", teamID)
	}
	return nil
}

func (s *Service) send(ctx context.Context, m mail.Message) error {
	if err := s.cfg.Mailer.Send(ctx, m); err != nil {
		return fmt.Errorf("mail %q: %w", m.Subject, errors.Join(errdefs.ErrUnavailable, err))
	}
	return nil
}

// signLink signs an invitation's link; Accept checks it.
func (s *Service) signLink(id string, expires time.Time) string {
	return account.SignLink(s.cfg.LinkKey, account.Link{Purpose: account.PurposeInvite, Subject: id, Expires: expires})
}
