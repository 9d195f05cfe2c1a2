package team

import (
	"context"
	"errors"
	"fmt"
	"html"
	"strings"

	"nestbox.dev/internal/account"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/mail"
	"nestbox.dev/internal/store"
)

// Invite mails email an invitation to join teamID with role (admin or
// member), for the owner and admins. The invitation is stored before the
// mail is sent; a mail that fails withdraws it again.
func (s *Service) Invite(ctx context.Context, actor, teamID, email string, role store.Role) (store.Invitation, error) {
	if err := s.manager(ctx, teamID, actor); err != nil {
		return store.Invitation{}, err
	}
	email, err := account.NormalizeEmail(email)
	if err != nil {
		return store.Invitation{}, err
	}
	if role != store.RoleAdmin && role != store.RoleMember {
		return store.Invitation{}, errdefs.Invalid("role %q: want admin or member", role)
	}
	t, err := s.store.GetTeam(ctx, teamID)
	if err != nil {
		return store.Invitation{}, err
	}
	now := s.cfg.Now().UTC()
	inv := store.Invitation{ID: "inv_" + strings.ToLower(randText()), TeamID: teamID, Email: email, Role: role,
		InvitedBy: actor, CreatedAt: now, ExpiresAt: now.Add(s.cfg.InviteTTL)}
	if err := s.store.CreateInvitation(ctx, inv, s.cfg.MaxPending, now); err != nil {
		return store.Invitation{}, err
	}
	if err := s.send(ctx, s.inviteMail(inv, t)); err != nil {
		if derr := s.store.DeleteInvitation(context.WithoutCancel(ctx), teamID, inv.ID); derr != nil {
			s.cfg.Logger.Warn("withdraw unsent invitation", "invitation", inv.ID, "err", derr)
		}
		return store.Invitation{}, err
	}
	return inv, nil
}

func (s *Service) inviteMail(inv store.Invitation, t store.Team) mail.Message {
	tok := s.signLink(inv.ID, inv.ExpiresAt)
	api := s.cfg.PublicURL + "/v1/invitations/accept"
	return mail.Message{
		To:      inv.Email,
		Subject: "You are invited to a Nestbox team",
		// The team's name is its owner's text: it goes in quoted in the
		// text part and escaped in the HTML part.
		Text: fmt.Sprintf("You are invited to join the Nestbox team %q as %s.\n\n"+
			"Log in (or sign up with this email first), then send with your session:\n\n"+
			"POST %s\n{\"token\": %q}\n\nThe invitation works once, until %s.\n",
			t.Name, inv.Role, api, tok, inv.ExpiresAt.Format("2006-01-02 15:04 UTC")),
		HTML: fmt.Sprintf(`<p>You are invited to join the Nestbox team <b>%s</b> as %s.</p>`+
			`<p>Log in (or sign up with this email first), then send with your session:</p><pre>POST %s
{"token": "%s"}</pre><p>The invitation works once, until %s.</p>`,
			html.EscapeString(t.Name), inv.Role, html.EscapeString(api), html.EscapeString(tok), inv.ExpiresAt.Format("2006-01-02 15:04 UTC")),
	}
}

// Invitations lists a team's pending invitations, for the owner and
// admins.
func (s *Service) Invitations(ctx context.Context, actor, teamID string) ([]store.Invitation, error) {
	if err := s.manager(ctx, teamID, actor); err != nil {
		return nil, err
	}
	return s.store.ListInvitations(ctx, teamID, s.cfg.Now().UTC())
}

// Withdraw deletes a pending invitation, for the owner and admins.
func (s *Service) Withdraw(ctx context.Context, actor, teamID, id string) error {
	if err := s.manager(ctx, teamID, actor); err != nil {
		return err
	}
	return s.store.DeleteInvitation(ctx, teamID, id)
}

// Accept joins user to the team of an invitation link. The invitation
// must be for the user's email; it works once.
func (s *Service) Accept(ctx context.Context, user store.User, token string) (store.Invitation, error) {
	l, err := account.ParseLink(s.cfg.LinkKey, token, account.PurposeInvite, s.cfg.Now())
	if err != nil {
		return store.Invitation{}, err
	}
	inv, err := s.store.GetInvitation(ctx, l.Subject)
	if errors.Is(err, errdefs.ErrNotFound) {
		return store.Invitation{}, errdefs.Invalid("link token: the invitation was withdrawn")
	}
	if err != nil {
		return store.Invitation{}, err
	}
	if inv.Email != user.Email {
		return store.Invitation{}, errdefs.Permission("this invitation is for another email")
	}
	return s.store.AcceptInvitation(ctx, inv.ID, user.ID, s.cfg.Now().UTC(), s.cfg.MaxMembers)
}
