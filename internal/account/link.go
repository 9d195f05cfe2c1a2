package account

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"nestbox.dev/internal/errdefs"
)

// Purpose is what a signed link may be used for; a link made for one
// purpose is refused for another.
type Purpose string

// The purposes of signed links.
const (
	PurposeVerify Purpose = "verify"
	PurposeReset  Purpose = "reset"
	PurposeInvite Purpose = "invite"
)

// Link is what a signed link carries: what for, about whom or what, until
// when, and, for a reset, the password version it may replace (so that it
// works once: the reset moves the version on).
type Link struct {
	Purpose Purpose
	// Subject is the user (verify, reset) or the invitation (invite).
	Subject string
	Expires time.Time // whole seconds
	Version int64
}

// maxLinkLen bounds what ParseLink reads; a real link is under 150 bytes.
const maxLinkLen = 512

// macLen is the length of an HMAC-SHA256 in unpadded base64url.
var macLen = base64.RawURLEncoding.EncodedLen(sha256.Size)

// SignLink returns l as a token, PURPOSE.USER.EXPIRES.VERSION.MAC, where
// MAC is HMAC-SHA256 under key of everything before it. The token holds
// only characters that need no escaping in a URL.
func SignLink(key []byte, l Link) string {
	payload := string(l.Purpose) + "." + l.Subject + "." + strconv.FormatInt(l.Expires.Unix(), 10) + "." + strconv.FormatInt(l.Version, 10)
	return payload + "." + mac(key, payload)
}

func mac(key []byte, payload string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// ParseLink checks a token made by SignLink under key, for purpose, at
// now. Whatever is wrong with it (shape, signature, purpose, expiry) is an
// error of kind ErrInvalid with the stable message of its cause; the
// token itself is never part of the message.
func ParseLink(key []byte, token string, purpose Purpose, now time.Time) (Link, error) {
	if len(token) > maxLinkLen {
		return Link{}, errdefs.Invalid("malformed link token: longer than %d bytes", maxLinkLen)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 5 || len(parts[4]) != macLen {
		return Link{}, errdefs.Invalid("malformed link token")
	}
	payload := token[:len(token)-macLen-1]
	// Check the signature before reading anything else: the fields of an
	// unsigned token are not worth parsing.
	if !hmac.Equal([]byte(mac(key, payload)), []byte(parts[4])) {
		return Link{}, errdefs.Invalid("link token: bad signature")
	}
	exp, err1 := strconv.ParseInt(parts[2], 10, 64)
	ver, err2 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil || !validID(parts[1]) {
		return Link{}, errdefs.Invalid("malformed link token")
	}
	l := Link{Purpose: Purpose(parts[0]), Subject: parts[1], Expires: time.Unix(exp, 0).UTC(), Version: ver}
	if l.Purpose != purpose {
		return Link{}, errdefs.Invalid("link token: made for %q, not %q", truncate(parts[0], 16), purpose)
	}
	if !now.Before(l.Expires) {
		return Link{}, errdefs.Invalid("link token: expired")
	}
	return l, nil
}

// validID is the shape of the IDs the services make.
func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
