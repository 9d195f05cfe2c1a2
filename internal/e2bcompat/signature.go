package e2bcompat

import (
	"crypto/subtle"
	"net/url"
	"strconv"
	"strings"

	"nestbox.dev/internal/envd/auth"
)

// SignedFileRequest reports whether q (the query of a /files request)
// carries an E2B URL signature.
func SignedFileRequest(q url.Values) bool { return strings.HasPrefix(q.Get("signature"), "v1_") }

// SignatureMatches reports whether q's signature was made with token for a
// request with method (GET reads, POST writes), by envd's own signing rule.
// Expiry is not checked here: envd checks it and answers with the error the
// SDK expects; this only finds the sandbox a URL belongs to.
func SignatureMatches(method string, q url.Values, token string) bool {
	if token == "" {
		return false
	}
	op := auth.OpRead
	if method == "POST" {
		op = auth.OpWrite
	}
	var exp int64
	if v := q.Get("signature_expiration"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return false
		}
		exp = n
	}
	want := auth.Sign(q.Get("path"), op, q.Get("username"), token, exp)
	return subtle.ConstantTimeCompare([]byte(want), []byte(q.Get("signature"))) == 1
}
