package mail_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/mail"
)

// received is one message as the test server got it.
type received struct {
	from, to string
	user     string // who authenticated, "" if nobody
	tls      bool
	data     []byte
}

// mailServer is a real SMTP server (go-smtp) in the test process that
// keeps what it receives.
type mailServer struct {
	addr string
	pool *x509.CertPool

	mu   sync.Mutex
	msgs []received
}

// newMailServer starts a server on loopback; with tlsOn it offers
// STARTTLS with a certificate of its own (in pool), and it accepts PLAIN
// authentication as "nestbox"/"s3cret".
func newMailServer(t *testing.T, tlsOn bool) *mailServer {
	t.Helper()
	ms := &mailServer{}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{ms: ms, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = !tlsOn
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	if tlsOn {
		cert, pool := selfSigned(t)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		ms.pool = pool
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ms
}

func (ms *mailServer) messages() []received {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]received(nil), ms.msgs...)
}

type session struct {
	ms   *mailServer
	conn *smtp.Conn
	cur  received
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != "nestbox" || pass != "s3cret" {
			return errors.New("bad credentials")
		}
		s.cur.user = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.cur.from = from; return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error   { s.cur.to = to; return nil }
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.ms.mu.Lock()
	s.ms.msgs = append(s.ms.msgs, s.cur)
	s.ms.mu.Unlock()
	return nil
}
func (s *session) Reset()        { s.cur = received{user: s.cur.user} }
func (s *session) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and the pool that trusts
// it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "nestbox test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// parts reads a received message's headers and its text and HTML parts.
func parts(t *testing.T, data []byte) (netmail.Header, string, string) {
	t.Helper()
	msg, err := netmail.ReadMessage(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, data)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	var text, html string
	if mt == "text/plain" {
		b, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
		return msg.Header, strings.TrimSuffix(string(b), "\r\n"), ""
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		b, _ := io.ReadAll(p) // multipart decodes quoted-printable itself
		switch ct := p.Header.Get("Content-Type"); {
		case strings.HasPrefix(ct, "text/plain"):
			text = string(b)
		case strings.HasPrefix(ct, "text/html"):
			html = string(b)
		default:
			t.Errorf("unexpected part %q", ct)
		}
	}
	return msg.Header, text, html
}

func TestSMTPDelivers(t *testing.T) {
	ms := newMailServer(t, true)
	m, err := mail.NewSMTP(mail.SMTPConfig{
		Addr: ms.addr, From: "Nestbox <noreply@nestbox.test>",
		Username: "nestbox", Password: "s3cret",
		TLS: &tls.Config{RootCAs: ms.pool, ServerName: "127.0.0.1"},
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
	got := ms.messages()
	if len(got) != 1 {
		t.Fatalf("server got %d messages, want 1", len(got))
	}
	r := got[0]
	if r.from != "noreply@nestbox.test" || r.to != "ada@example.com" || r.user != "nestbox" || !r.tls {
		t.Errorf("envelope from %q to %q, user %q, tls %v; want noreply@nestbox.test, ada@example.com, nestbox, true", r.from, r.to, r.user, r.tls)
	}
	h, text, html := parts(t, r.data)
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
	ms := newMailServer(t, false)
	m, err := mail.NewSMTP(mail.SMTPConfig{Addr: ms.addr, From: "noreply@nestbox.test", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(t.Context(), mail.Message{To: "bob@example.com", Subject: "Hi", Text: "hello"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := ms.messages()
	if len(got) != 1 {
		t.Fatalf("server got %d messages, want 1", len(got))
	}
	if got[0].tls || got[0].user != "" {
		t.Errorf("tls %v user %q, want a plain unauthenticated session", got[0].tls, got[0].user)
	}
	if _, text, html := parts(t, got[0].data); text != "hello" || html != "" {
		t.Errorf("text %q html %q, want hello and none", text, html)
	}
}

// A server without STARTTLS is refused unless Insecure: the mail (and a
// password) would travel in clear.
func TestSMTPRequiresTLS(t *testing.T) {
	ms := newMailServer(t, false)
	m, err := mail.NewSMTP(mail.SMTPConfig{Addr: ms.addr, From: "noreply@nestbox.test"})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Send(t.Context(), mail.Message{To: "bob@example.com", Subject: "Hi", Text: "hello"})
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Send to a server without STARTTLS: %v, want unavailable", err)
	}
	if n := len(ms.messages()); n != 0 {
		t.Errorf("server got %d messages, want 0", n)
	}
}

func TestSMTPWrongPassword(t *testing.T) {
	ms := newMailServer(t, true)
	m, err := mail.NewSMTP(mail.SMTPConfig{Addr: ms.addr, From: "noreply@nestbox.test", Username: "nestbox", Password: "wrong",
		TLS: &tls.Config{RootCAs: ms.pool, ServerName: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(t.Context(), mail.Message{To: "bob@example.com", Subject: "Hi", Text: "hello"}); err == nil {
		t.Error("Send with a wrong password succeeded")
	}
	if n := len(ms.messages()); n != 0 {
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
