// Package mail sends the control plane's email: verification links,
// password resets, account notices. Mailer is the contract; SMTP delivers
// through a mail server and Log writes mails to the log for development.
// The control plane (internal/account, cmd/nestbox) imports it.
package mail

import (
	"context"
	"net/mail"
	"strings"

	"nestbox.dev/internal/errdefs"
)

// Message is one mail to one recipient, with a plain-text part and an
// optional HTML part (empty: text only).
type Message struct {
	To      string
	Subject string
	Text    string
	HTML    string
}

// Mailer sends mail. Implementations are safe for concurrent use. Send
// returns when the message was handed on (accepted by the mail server, or
// logged); an error means it was not.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// Check validates m: one plain address in To, a subject without line
// breaks (header injection) and a text part.
func (m Message) Check() error {
	a, err := mail.ParseAddress(m.To)
	if err != nil || a.Name != "" || a.Address != m.To {
		return errdefs.Invalid("mail recipient %q: want a plain address", m.To)
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return errdefs.Invalid("mail subject has a line break")
	}
	if m.Text == "" {
		return errdefs.Invalid("mail to %s has no text", m.To)
	}
	return nil
}
