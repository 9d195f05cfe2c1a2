package server_test

import (
	"fmt"
	"html"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"nestbox.dev/internal/account"
	"nestbox.dev/internal/mail/mailtest"
	"nestbox.dev/internal/server"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/team"
)

// TestMailsOverSMTP: the four account mails (verification, password reset,
// invitation, account purged) go through the production SMTP mailer to a
// real SMTP server, over STARTTLS with authentication, each with a text
// and an HTML part; the links and tokens that arrived work through the API.
func TestMailsOverSMTP(t *testing.T) {
	ms := mailtest.Start(t, true)
	var acc *account.Service
	e := newEnv(t, withConfig(func(c *server.Config) {
		m := ms.Mailer(t)
		var err error
		acc, err = account.New(account.Config{Store: c.Store, Mailer: m, LinkKey: []byte(strings.Repeat("k", 32)),
			PublicURL: "https://nestbox.test", BcryptCost: bcrypt.MinCost})
		if err != nil {
			t.Fatal(err)
		}
		c.Accounts = acc
		if c.Teams, err = team.New(team.Config{Store: c.Store, Mailer: m, LinkKey: []byte(strings.Repeat("k", 32)), PublicURL: "https://nestbox.test"}); err != nil {
			t.Fatal(err)
		}
	}))
	// arrived returns the token of the one new mail, which must be to to
	// with subject, and checks its envelope and parts.
	seen := 0
	arrived := func(to, subject string, withToken bool) string {
		t.Helper()
		got := ms.Messages()
		if len(got) != seen+1 {
			t.Fatalf("the server has %d messages, want %d (one more: %q to %s)", len(got), seen+1, subject, to)
		}
		r := got[seen]
		seen++
		if r.From != "noreply@nestbox.test" || r.To != to || !r.TLS || r.User != mailtest.User {
			t.Errorf("%q: envelope from %q to %q, tls %v, user %q", subject, r.From, r.To, r.TLS, r.User)
		}
		h, text, htm := mailtest.Parts(t, r.Data)
		if h.Get("Subject") != subject || h.Get("To") != to {
			t.Errorf("mail to %s: subject %q, To %q; want %q", to, h.Get("Subject"), h.Get("To"), subject)
		}
		if text == "" || htm == "" {
			t.Errorf("%q: text %q, html %q; want both parts", subject, text, htm)
		}
		if !withToken {
			return ""
		}
		g := mailToken.FindStringSubmatch(text)
		if g == nil {
			t.Fatalf("%q has no token in its text: %s", subject, text)
		}
		tok := g[1] + g[2]
		if !strings.Contains(htm, html.EscapeString(tok)) {
			t.Errorf("%q: the HTML part lacks the text part's token %s: %s", subject, tok, htm)
		}
		return tok
	}

	signUp := func(email string) tokens {
		t.Helper()
		if code, b := e.call(t, "POST", "/v1/auth/signup", "", fmt.Sprintf(`{"email":%q,"password":"long enough"}`, email), nil); code != 202 {
			t.Fatalf("sign-up %s: %d %s", email, code, b)
		}
		tok := arrived(email, "Verify your email for Nestbox", true)
		if code, b := e.call(t, "GET", "/v1/auth/verify?token="+tok, "", "", nil); code != 200 {
			t.Fatalf("verify %s with the mailed link: %d %s", email, code, b)
		}
		var s tokens
		if code, b := e.call(t, "POST", "/v1/auth/login", "", fmt.Sprintf(`{"email":%q,"password":"long enough"}`, email), &s); code != 200 {
			t.Fatalf("log in %s: %d %s", email, code, b)
		}
		return s
	}
	ada := signUp("ada@example.com")

	if code, b := e.call(t, "POST", "/v1/auth/password-reset", "", `{"email":"ada@example.com"}`, nil); code != 202 {
		t.Fatalf("reset: %d %s", code, b)
	}
	tok := arrived("ada@example.com", "Reset your Nestbox password", true)
	if code, b := e.call(t, "POST", "/v1/auth/password-reset/confirm", "", fmt.Sprintf(`{"token":%q,"password":"a new password"}`, tok), nil); code != 204 {
		t.Fatalf("confirm the reset with the mailed token: %d %s", code, b)
	}
	// The reset ended ada's sessions: a new one, with the new password.
	if code, b := e.call(t, "POST", "/v1/auth/login", "", `{"email":"ada@example.com","password":"a new password"}`, &ada); code != 200 {
		t.Fatalf("log in with the new password: %d %s", code, b)
	}

	if code, b := e.call(t, "POST", "/v1/teams/"+ada.TeamID+"/invitations", ada.AccessToken, `{"email":"bob@example.com"}`, nil); code != 201 {
		t.Fatalf("invite: %d %s", code, b)
	}
	invite := arrived("bob@example.com", "You are invited to a Nestbox team", true)
	bob := signUp("bob@example.com")
	if code, b := e.call(t, "POST", "/v1/invitations/accept", bob.AccessToken, fmt.Sprintf(`{"token":%q}`, invite), nil); code != 200 {
		t.Fatalf("accept with the mailed token: %d %s", code, b)
	}

	if code, b := e.call(t, "DELETE", "/v1/users/me", bob.AccessToken, "", nil); code != 202 {
		t.Fatalf("bob deletes his account: %d %s", code, b)
	}
	old := time.Now().Add(-account.DefaultGrace - time.Hour)
	if err := e.store.SetAccountStatus(t.Context(), bob.UserID, store.AccountDeleted, store.AccountDeleted, old); err != nil {
		t.Fatal(err)
	}
	if n, err := acc.Purge(t.Context()); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want bob", n, err)
	}
	arrived("bob@example.com", "Your Nestbox account is deleted", false)
}
