package account_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"nestbox.dev/internal/account"
	"nestbox.dev/internal/errdefs"
)

func TestLink(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l := account.Link{Purpose: account.PurposeReset, Subject: "usr_abc234", Expires: now.Add(time.Hour), Version: 3}
	tok := account.SignLink(linkKey, l)
	got, err := account.ParseLink(linkKey, tok, account.PurposeReset, now)
	if err != nil || got != l {
		t.Fatalf("ParseLink(SignLink(%+v)) = %+v, %v", l, got, err)
	}
	other := []byte("another key, 32 bytes long......")
	flip := []byte(tok)
	flip[len("reset.usr_abc")] = 'x' // another user, same signature
	for _, tc := range []struct {
		name, tok string
		purpose   account.Purpose
		now       time.Time
		key       []byte
	}{
		{"other key", tok, account.PurposeReset, now, other},
		{"other purpose", tok, account.PurposeVerify, now, linkKey},
		{"expired", tok, account.PurposeReset, now.Add(time.Hour), linkKey},
		{"tampered user", string(flip), account.PurposeReset, now, linkKey},
		{"no signature", tok[:strings.LastIndex(tok, ".")], account.PurposeReset, now, linkKey},
		{"empty", "", account.PurposeReset, now, linkKey},
		{"huge", strings.Repeat("a.", 10000), account.PurposeReset, now, linkKey},
	} {
		if _, err := account.ParseLink(tc.key, tc.tok, tc.purpose, tc.now); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ParseLink(%s): %v, want invalid", tc.name, err)
		}
	}
}

// FuzzParseLink: no input panics, an error never echoes the token, and
// whatever parses is exactly what signing it gives back.
func FuzzParseLink(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Add(account.SignLink(linkKey, account.Link{Purpose: account.PurposeVerify, Subject: "usr_x", Expires: now.Add(time.Hour)}))
	f.Add(account.SignLink(linkKey, account.Link{Purpose: account.PurposeReset, Subject: "usr_y", Expires: now.Add(time.Minute), Version: 9}))
	f.Add("verify.usr_x.1.0.")
	f.Add("....")
	f.Fuzz(func(t *testing.T, tok string) {
		for _, p := range []account.Purpose{account.PurposeVerify, account.PurposeReset} {
			l, err := account.ParseLink(linkKey, tok, p, now)
			if err != nil {
				if len(tok) > 8 && strings.Contains(err.Error(), tok) {
					t.Fatalf("error %q echoes the token", err)
				}
				continue
			}
			if again := account.SignLink(linkKey, l); again != tok {
				t.Fatalf("ParseLink(%q) = %+v, which signs to %q", tok, l, again)
			}
		}
	})
}

func FuzzParseToken(f *testing.F) {
	f.Add("nbs_0123456789abcdef0123456789abcdef01234567")
	f.Add("nbr_")
	f.Fuzz(func(t *testing.T, tok string) {
		hash, err := account.ParseToken(tok, account.AccessPrefix)
		if err == nil && (len(hash) != 64 || !strings.HasPrefix(tok, account.AccessPrefix)) {
			t.Fatalf("ParseToken(%q) = %q", tok, hash)
		}
		if err != nil && !errors.Is(err, errdefs.ErrUnauthenticated) {
			t.Fatalf("ParseToken(%q): %v, want unauthenticated", tok, err)
		}
	})
}
