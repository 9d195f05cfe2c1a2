package account

import (
	"fmt"
	"html"
	"net/url"
	"time"

	"nestbox.dev/internal/mail"
)

// The mails the service sends. Each has a text part and an HTML part that
// says the same; user-provided text never enters them (names could carry
// markup), only the service's own URLs and tokens, escaped.

func verifyMail(to, base, token string, ttl time.Duration) mail.Message {
	link := base + "/v1/auth/verify?token=" + url.QueryEscape(token)
	return mail.Message{
		To:      to,
		Subject: "Verify your email for Nestbox",
		Text: fmt.Sprintf("Open this link to verify your email and activate your Nestbox account:\n\n%s\n\n"+
			"The link works for %s. If you did not sign up, ignore this mail.\n", link, ttl),
		HTML: fmt.Sprintf(`<p>Open this link to verify your email and activate your Nestbox account:</p><p><a href="%s">%s</a></p>`+
			`<p>The link works for %s. If you did not sign up, ignore this mail.</p>`, html.EscapeString(link), html.EscapeString(link), ttl),
	}
}

func resetMail(to, base, token string, ttl time.Duration) mail.Message {
	return mail.Message{
		To:      to,
		Subject: "Reset your Nestbox password",
		Text: fmt.Sprintf("Someone asked to reset the password of your Nestbox account. To choose a new one, send:\n\n"+
			"POST %s/v1/auth/password-reset/confirm\n{\"token\": %q, \"password\": \"...\"}\n\n"+
			"The token works once, for %s. If you did not ask, ignore this mail: your password stays.\n", base, token, ttl),
		HTML: fmt.Sprintf(`<p>Someone asked to reset the password of your Nestbox account. To choose a new one, send:</p>`+
			`<pre>POST %s/v1/auth/password-reset/confirm
{"token": "%s", "password": "..."}</pre><p>The token works once, for %s. If you did not ask, ignore this mail: your password stays.</p>`,
			html.EscapeString(base), html.EscapeString(token), ttl),
	}
}

func noticeTaken(to, base string) mail.Message {
	return mail.Message{
		To:      to,
		Subject: "Your Nestbox account",
		Text: fmt.Sprintf("Someone tried to sign up to Nestbox with this email, which already has an account.\n"+
			"If it was you, log in at %s; if you forgot your password, ask for a reset.\n", base),
		HTML: fmt.Sprintf(`<p>Someone tried to sign up to Nestbox with this email, which already has an account.</p>`+
			`<p>If it was you, log in at %s; if you forgot your password, ask for a reset.</p>`, html.EscapeString(base)),
	}
}

func goneMail(to string) mail.Message {
	return mail.Message{
		To:      to,
		Subject: "Your Nestbox account is deleted",
		Text:    "Your Nestbox account was deleted, and its grace period is over: it and its data are gone.\n",
		HTML:    "<p>Your Nestbox account was deleted, and its grace period is over: it and its data are gone.</p>",
	}
}
