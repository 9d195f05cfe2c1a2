package account

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"nestbox.dev/internal/errdefs"
)

// Prefixes of the opaque tokens a session hands out: the access token,
// presented like an API key, and the refresh token, presented only to
// refresh. Only their SHA-256 hashes are stored.
const (
	AccessPrefix  = "nbs_"
	RefreshPrefix = "nbr_"
	tokenHexLen   = 40
)

// newToken returns a fresh token with prefix and the hash to store.
func newToken(prefix string) (token, hash string) {
	var b [tokenHexLen / 2]byte
	rand.Read(b[:]) // never fails
	digits := hex.EncodeToString(b[:])
	return prefix + digits, hashDigits(digits)
}

// ParseToken checks a presented token's shape for prefix and returns the
// hash to look it up by.
func ParseToken(token, prefix string) (string, error) {
	digits, ok := strings.CutPrefix(token, prefix)
	if !ok || len(digits) != tokenHexLen || strings.Trim(digits, "0123456789abcdef") != "" {
		return "", errdefs.Unauthenticated("malformed token: want %s followed by %d hex digits", prefix, tokenHexLen)
	}
	return hashDigits(digits), nil
}

// IsSessionToken reports whether a presented credential is meant as a
// session's access token (rather than an API key).
func IsSessionToken(s string) bool { return strings.HasPrefix(s, AccessPrefix) }

func hashDigits(digits string) string {
	sum := sha256.Sum256([]byte(digits))
	return hex.EncodeToString(sum[:])
}

// newID returns prefix and 16 random lower-case characters.
func newID(prefix string) string { return prefix + strings.ToLower(rand.Text()[:16]) }
