// Package auth checks envd's credentials: the X-Access-Token that the
// platform sets through /init, and the v1 signatures of header-less /files
// URLs that E2B's SDK makes (uploadUrl, downloadUrl). The control plane may
// import it to route signed URLs to the sandbox whose token signed them.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strconv"
	"time"

	"nestbox.dev/internal/errdefs"
)

// Operations that a file signature covers.
const (
	OpRead  = "read"
	OpWrite = "write"
)

// Sign returns the v1 signature of a /files request:
// "v1_" + base64 (standard alphabet, no padding) of
// sha256("path:op:user:token") with ":exp" appended when exp is not zero.
// path is the raw query value, before it is resolved; user is "" when the
// request names none.
func Sign(path, op, user, token string, exp int64) string {
	raw := path + ":" + op + ":" + user + ":" + token
	if exp != 0 {
		raw += ":" + strconv.FormatInt(exp, 10)
	}
	sum := sha256.Sum256([]byte(raw))
	return "v1_" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// CheckSignature verifies signature for the request and its raw
// signature_expiration query value ("" means it never expires). Errors are
// ErrUnauthenticated or ErrInvalid with a message fit for the client.
func CheckSignature(signature, path, op, user, token, expiration string, now time.Time) error {
	if token == "" {
		return errdefs.Unauthenticated("access token not set, signatures are not accepted")
	}
	if signature == "" {
		return errdefs.Unauthenticated("missing signature")
	}
	var exp int64
	if expiration != "" {
		n, err := strconv.ParseInt(expiration, 10, 64)
		if err != nil {
			return errdefs.Invalid("invalid signature expiration %q", expiration)
		}
		exp = n
	}
	want := Sign(path, op, user, token, exp)
	if subtle.ConstantTimeCompare([]byte(signature), []byte(want)) != 1 {
		return errdefs.Unauthenticated("invalid signature")
	}
	if expiration != "" && exp < now.Unix() {
		return errdefs.Unauthenticated("signature is already expired")
	}
	return nil
}

// CheckToken reports whether got is the access token want, in constant time.
// An empty want accepts anything.
func CheckToken(got, want string) bool {
	if want == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
