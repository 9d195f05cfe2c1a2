package mail

import (
	"context"
	"log/slog"
)

// Log is the development Mailer: it sends nothing and logs each mail,
// text part included, at level Info.
//
// The text part is logged on purpose, although a verification or reset
// link is as good as a password for as long as it is valid: on a
// development install the operator is every user's mailbox, and a link
// that nobody can read makes sign-up impossible. Log is therefore the
// default of `nestbox up` only, which says so when it starts; a platform
// with users other than its operator configures SMTP, whose mails never
// reach the log.
type Log struct {
	// Logger receives the mails; nil discards them.
	Logger *slog.Logger
}

// Send logs m.
func (l Log) Send(ctx context.Context, m Message) error {
	if err := m.Check(); err != nil {
		return err
	}
	log := l.Logger
	if log == nil {
		return nil
	}
	log.InfoContext(ctx, "mail (development mailer: not sent)", "to", m.To, "subject", m.Subject, "text", m.Text)
	return nil
}
