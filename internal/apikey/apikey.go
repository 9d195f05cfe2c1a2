// Package apikey makes and reads Nestbox API keys: "nbx_" followed by 40
// lower-case hex digits. The same secret is also accepted as "e2b_" and the
// same digits, because E2B's SDKs up to 2.45 refuse keys of another shape.
// Only the hash of the digits is ever stored. Any package of the control
// plane and the CLI may import it.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"nestbox.dev/internal/errdefs"
)

// Prefixes of a key; the secret is what follows.
const (
	Prefix    = "nbx_"
	E2BPrefix = "e2b_"
	hexLen    = 40
)

// New returns a fresh key and the hash to store for it.
func New() (key, hash string) {
	var b [hexLen / 2]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather)
	digits := hex.EncodeToString(b[:])
	return Prefix + digits, hashDigits(digits)
}

// Parse checks a presented key's shape and returns the hash to look it up
// by. Either prefix is accepted.
func Parse(key string) (hash string, err error) {
	digits, ok := strings.CutPrefix(key, Prefix)
	if !ok {
		digits, ok = strings.CutPrefix(key, E2BPrefix)
	}
	if !ok || len(digits) != hexLen || !isLowerHex(digits) {
		return "", errdefs.Unauthenticated("malformed API key: want %s followed by %d hex digits", Prefix, hexLen)
	}
	return hashDigits(digits), nil
}

// E2BForm returns key with the prefix E2B's SDKs expect.
func E2BForm(key string) string {
	if digits, ok := strings.CutPrefix(key, Prefix); ok {
		return E2BPrefix + digits
	}
	return key
}

// DisplayPrefix is the part of a key that lists show so a user can tell
// keys apart: the prefix and the first 6 digits.
func DisplayPrefix(key string) string {
	if len(key) < len(Prefix)+6 {
		return key
	}
	return key[:len(Prefix)+6]
}

func hashDigits(digits string) string {
	sum := sha256.Sum256([]byte(digits))
	return hex.EncodeToString(sum[:])
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
