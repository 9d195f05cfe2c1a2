package mail_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"mime"
	"net"
	"strings"
	"testing"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/mail"
	"nestbox.dev/internal/mail/mailtest"
)

func TestSMTPDelivers(t *testing.T) {
	ms := mailtest.Start(t, true)
	m, err := mail.NewSMTP(mail.SMTPConfig{
		Addr: ms.Addr, From: "Nestbox <noreply@nestbox.test>",
		Username: mailtest.User, Password: mailtest.Password,
		TLS: &tls.Config{RootCAs: ms.Pool, ServerName: "127.0.0.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a very long line of text ", 20) // past SMTP's 998
	msg := mail.Message{
		To:      "ada@example.com",
		Subject: "Vérifiez: your account",
		Text:    "Open https://nestbox.test/verify?token=abc.def\n" + long + "\n.\nlast line",
		HTML:    `<p><a href="https://nestbox.test/verify?token=abc.def">verify</a></p>`,
	}
	if err := m.Send(t.Context(), msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := ms.Messages()
	if len(got) != 1 {
		t.Fatalf("server got %d messages, want 1", len(got))
	}
	r := got[0]
	if r.From != "noreply@nestbox.test" || r.To != "ada@example.com" || r.User != "nestbox" || !r.TLS {
		t.Errorf("envelope from %q to %q, user %q, tls %v; want noreply@nestbox.test, ada@example.com, nestbox, true", r.From, r.To, r.User, r.TLS)
	}
	h, text, html := mailtest.Parts(t, r.Data)
	if subj, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject")); subj != msg.Subject {
		t.Errorf("subject %q, want %q", subj, msg.Subject)
	}
	if h.Get("To") != msg.To || h.Get("Message-Id") == "" || h.Get("Date") == "" {
		t.Errorf("headers To %q, Message-Id %q, Date %q", h.Get("To"), h.Get("Message-Id"), h.Get("Date"))
	}
	if want := strings.ReplaceAll(msg.Text, "\n", "\r\n"); text != want {
		t.Errorf("text part %q, want %q", text, want)
	}
	if html != msg.HTML {
		t.Errorf("html part %q, want %q", html, msg.HTML)
	}
}

func TestSMTPTextOnly(t *testing.T) {
	ms := mailtest.Start(t, false)
	m, err := mail.NewSMTP(mail.SMTPConfig{Addr: ms.Addr, From: "noreply@nestbox.test", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(t.Context(), mail.Message{To: "bob@example.com", Subject: "Hi", Text: "hello"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := ms.Messages()
	if len(got) != 1 {
		t.Fatalf("server got %d messages, want 1", len(got))
	}
	if got[0].TLS || got[0].User != "" {
		t.Errorf("tls %v user %q, want a plain unauthenticated session", got[0].TLS, got[0].User)
	}
	if _, text, html := mailtest.Parts(t, got[0].Data); text != "hello" || html != "" {
		t.Errorf("text %q html %q, want hello and none", text, html)
	}
}

// A server without STARTTLS is refused unless Insecure: the mail (and a
// password) would travel in clear.
func TestSMTPRequiresTLS(t *testing.T) {
	ms := mailtest.Start(t, false)
	m, err := mail.NewSMTP(mail.SMTPConfig{Addr: ms.Addr, From: "noreply@nestbox.test"})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Send(t.Context(), mail.Message{To: "bob@example.com", Subject: "Hi", Text: "hello"})
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Send to a server without STARTTLS: %v, want unavailable", err)
	}
	if n := len(ms.Messages()); n != 0 {
		t.Errorf("server got %d messages, want 0", n)
	}
}

func TestSMTPWrongPassword(t *testing.T) {
	ms := mailtest.Start(t, true)
	m, err := mail.NewSMTP(mail.SMTPConfig{Addr: ms.Addr, From: "noreply@nestbox.test", Username: "nestbox", Password: "wrong",
		TLS: &tls.Config{RootCAs: ms.Pool, ServerName: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(t.Context(), mail.Message{To: "bob@example.com", Subject: "Hi", Text: "hello"}); err == nil {
		t.Error("Send with a wrong password succeeded")
	}
	if n := len(ms.Messages()); n != 0 {
		t.Errorf("server got %d messages, want 0", n)
	}
}

func TestSMTPUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	m, err := mail.NewSMTP(mail.SMTPConfig{Addr: addr, From: "noreply@nestbox.test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := m.Send(ctx, mail.Message{To: "bob@example.com", Subject: "Hi", Text: "hello"}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Send to a closed port: %v, want unavailable", err)
	}
}

func TestMessageCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    mail.Message
		ok   bool
	}{
		{"plain", mail.Message{To: "a@example.com", Subject: "s", Text: "t"}, true},
		{"named recipient", mail.Message{To: "Ada <a@example.com>", Subject: "s", Text: "t"}, false},
		{"two recipients", mail.Message{To: "a@example.com, b@example.com", Subject: "s", Text: "t"}, false},
		{"injected header", mail.Message{To: "a@example.com", Subject: "s\r\nBcc: x@example.com", Text: "t"}, false},
		{"no text", mail.Message{To: "a@example.com", Subject: "s"}, false},
		{"no recipient", mail.Message{Subject: "s", Text: "t"}, false},
	} {
		err := tc.m.Check()
		if (err == nil) != tc.ok {
			t.Errorf("Check(%s) = %v, want ok %v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Check(%s) = %v, want invalid", tc.name, err)
		}
	}
	if _, err := mail.NewSMTP(mail.SMTPConfig{Addr: "127.0.0.1:25", From: "x\r\nBcc: y@example.com"}); err == nil {
		t.Error("NewSMTP accepted a sender with a line break")
	}
	if _, err := mail.NewSMTP(mail.SMTPConfig{Addr: "nohost", From: "a@example.com"}); err == nil {
		t.Error("NewSMTP accepted an address without a port")
	}
}

// The log mailer logs the text part (the operator of a development install
// is the users' mailbox) and refuses what SMTP would.
func TestLogMailer(t *testing.T) {
	var b strings.Builder
	m := mail.Log{Logger: slog.New(slog.NewTextHandler(&b, nil))}
	if err := m.Send(t.Context(), mail.Message{To: "a@example.com", Subject: "Verify", Text: "https://x/verify?t=tok"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a@example.com", "Verify", "https://x/verify?t=tok"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("log %q lacks %q", b.String(), want)
		}
	}
	if err := m.Send(t.Context(), mail.Message{To: "bad", Text: "t"}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Send to a bad address: %v, want invalid", err)
	}
}
