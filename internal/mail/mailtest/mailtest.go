// Package mailtest is a real SMTP server (go-smtp) in a test's own
// process that keeps what it receives, so that tests of the mailer and of
// the services that send mail check what arrived. Only tests import it.
package mailtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
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

	"nestbox.dev/internal/mail"
)

// The account the server accepts for PLAIN authentication.
const (
	User     = "nestbox"
	Password = "s3cret"
)

// Received is one message as the server got it.
type Received struct {
	From, To string
	User     string // who authenticated, "" if nobody
	TLS      bool
	Data     []byte
}

// Server is a running server. It is safe for concurrent use.
type Server struct {
	// Addr is its host:port on loopback.
	Addr string
	// Pool trusts its certificate (nil without TLS).
	Pool *x509.CertPool

	mu   sync.Mutex
	msgs []Received
}

// Start starts a server on loopback, closed when t ends; with tlsOn it
// offers STARTTLS with a certificate of its own (in Pool), and it accepts
// PLAIN authentication as User/Password.
func Start(t testing.TB, tlsOn bool) *Server {
	t.Helper()
	ms := &Server{}
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
		ms.Pool = pool
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms.Addr = ln.Addr().String()
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

// Mailer is the production SMTP mailer, configured for s with TLS and
// authentication (s must have been started with TLS).
func (s *Server) Mailer(t testing.TB) *mail.SMTP {
	t.Helper()
	m, err := mail.NewSMTP(mail.SMTPConfig{
		Addr: s.Addr, From: "Nestbox <noreply@nestbox.test>", Username: User, Password: Password,
		TLS: &tls.Config{RootCAs: s.Pool, ServerName: "127.0.0.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Messages returns what the server received, in order.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

type session struct {
	ms   *Server
	conn *smtp.Conn
	cur  Received
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != User || pass != Password {
			return errors.New("bad credentials")
		}
		s.cur.User = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.cur.From = from; return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error   { s.cur.To = to; return nil }
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = b
	_, s.cur.TLS = s.conn.TLSConnectionState()
	s.ms.mu.Lock()
	s.ms.msgs = append(s.ms.msgs, s.cur)
	s.ms.mu.Unlock()
	return nil
}
func (s *session) Reset()        { s.cur = Received{User: s.cur.User} }
func (s *session) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and the pool that trusts
// it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
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

// Parts reads a received message's headers and its text and HTML parts
// (quoted-printable decoded; "" for a part it does not have).
func Parts(t testing.TB, data []byte) (netmail.Header, string, string) {
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
