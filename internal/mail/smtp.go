package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"net/smtp"
	"strings"
	"time"

	"nestbox.dev/internal/errdefs"
)

// SMTPConfig configures an SMTP Mailer. Addr and From are required.
type SMTPConfig struct {
	// Addr is the mail server's host:port (587 for submission).
	Addr string
	// From is the sender's address, e.g. "Nestbox <noreply@example.com>".
	From string
	// Username and Password, if Username is set, authenticate with PLAIN,
	// which is sent only over TLS (net/smtp refuses otherwise, except to
	// localhost).
	Username, Password string
	// Insecure allows a server that does not offer STARTTLS: mail then
	// travels in clear. Without it such a server is refused.
	Insecure bool
	// TLS is the STARTTLS configuration; nil verifies the server's
	// certificate against the system's roots for Addr's host.
	TLS *tls.Config
	// Timeout bounds one Send when its context has no earlier deadline;
	// zero means 30 s.
	Timeout time.Duration
}

// SMTP delivers mail to one SMTP server, one connection per message.
type SMTP struct {
	cfg  SMTPConfig
	host string
	from string // the bare address of cfg.From
}

// NewSMTP returns an SMTP Mailer.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, errdefs.Invalid("SMTP address %q: want host:port", cfg.Addr)
	}
	from, err := parseFrom(cfg.From)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.TLS == nil {
		cfg.TLS = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return &SMTP{cfg: cfg, host: host, from: from}, nil
}

// parseFrom returns the bare address of the sender s, which becomes a
// header: it must not hold a line break.
func parseFrom(s string) (string, error) {
	a, err := netmail.ParseAddress(s)
	if err != nil || strings.ContainsAny(s, "\r\n") {
		return "", errdefs.Invalid("SMTP sender %q: want an address such as \"Nestbox <noreply@example.com>\"", s)
	}
	return a.Address, nil
}

// Send delivers m: dial, EHLO, STARTTLS (required unless Insecure), AUTH
// if configured, one envelope, the MIME message, QUIT.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	if err := m.Check(); err != nil {
		return err
	}
	if err := s.send(ctx, m); err != nil {
		return fmt.Errorf("send mail to %s via %s: %w", m.To, s.cfg.Addr, err)
	}
	return nil
}

func (s *SMTP) send(ctx context.Context, m Message) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.Timeout)
		defer cancel()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return errdefs.Unavailable("dial: %v", err)
	}
	// The deadline bounds the whole conversation; cancelling ctx ends it
	// early by closing the connection.
	dl, _ := ctx.Deadline()
	nc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	c, err := smtp.NewClient(nc, s.host)
	if err != nil {
		nc.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(s.cfg.TLS); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
	} else if !s.cfg.Insecure {
		return errdefs.Unavailable("the server does not offer STARTTLS (set Insecure to send in clear)")
	}
	if s.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.host)); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if err := c.Mail(s.from); err != nil {
		return err
	}
	if err := c.Rcpt(m.To); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(compose(s.cfg.From, m, time.Now())); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// compose writes m as an RFC 5322 message: text/plain, or
// multipart/alternative with the HTML part last (the one clients prefer),
// each part quoted-printable so that no line is too long. Lines end in
// CRLF; net/smtp's DATA writer dot-stuffs.
func compose(from string, m Message, now time.Time) []byte {
	var b bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("From", from)
	h("To", m.To)
	h("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	h("Date", now.Format(time.RFC1123Z))
	h("Message-ID", "<"+strings.ToLower(rand.Text())+"@nestbox>")
	h("MIME-Version", "1.0")
	if m.HTML == "" {
		h("Content-Type", `text/plain; charset="utf-8"`)
		h("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		writeQP(&b, m.Text)
		b.WriteString("\r\n")
		return b.Bytes()
	}
	boundary := "nestbox-" + strings.ToLower(rand.Text())
	h("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	for _, p := range []struct{ typ, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		b.WriteString("--" + boundary + "\r\n")
		h("Content-Type", p.typ+`; charset="utf-8"`)
		h("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		writeQP(&b, p.body)
		b.WriteString("\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes()
}

func writeQP(b *bytes.Buffer, s string) {
	w := quotedprintable.NewWriter(b)
	w.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")))
	w.Close()
}
