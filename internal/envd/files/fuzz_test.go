package files

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"nestbox.dev/internal/envd/auth"
	"nestbox.dev/internal/envd/filesystem"
	"nestbox.dev/internal/envd/identity"
	"nestbox.dev/internal/envd/settings"
)

// FuzzParseRequest feeds the parsers of a /files request: query string,
// authorization, part filename, metadata headers, Accept-Encoding and a
// multipart body. None may panic or hang, and what they accept must be
// usable.
func FuzzParseRequest(f *testing.F) {
	f.Add("path=%2Fhome%2Fuser%2Fa.txt&username=user", `form-data; name="file"; filename="/home/user/a.txt"`, "X-Metadata-Owner", "alice", "gzip, deflate",
		[]byte("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a/b.txt\"\r\n\r\nhello\r\n--B--\r\n"))
	f.Add("path=a&path=b", `form-data; name="file"; filename*=UTF-8''%E2%82%AC.txt`, "x-metadata-", "", "identity;q=0", []byte("--B--"))
	f.Add("signature=v1_x&signature_expiration=-1&path=", `form-data; filename="q%22uote"`, "X-Metadata-K", "\xff", "*;q=0", []byte("--B\r\n\r\n"))
	f.Add("%zz", `attachment; filename="\`, "Other", "v", "gzip;q=nan", []byte{})
	h, err := New(Config{Settings: settings.New("root", ""), Now: func() time.Time { return time.Unix(fixedUnix, 0) }})
	if err != nil {
		f.Fatal(err)
	}
	h.settings.Apply(settings.Update{AccessToken: ptr("tok")})
	u := identity.User{Name: "user", Home: "/home/user"}

	f.Fuzz(func(t *testing.T, rawQuery, disposition, metaName, metaValue, accept string, body []byte) {
		q, err := parseQuery(rawQuery)
		if err == nil {
			if q.hasPath {
				checkResolved(t, u, q.path)
			}
			r, _ := http.NewRequest("GET", "/files", nil)
			r.URL.RawQuery = rawQuery
			if h.authorize(r, q, auth.OpRead) == nil && q.signature != auth.Sign(q.path, auth.OpRead, q.username, "tok", mustInt(q.expiration)) {
				t.Fatalf("authorized %q without a valid signature", rawQuery)
			}
		}

		if name := partFileName(textproto.MIMEHeader{"Content-Disposition": {disposition}}); name != "" {
			checkResolved(t, u, name)
		}

		md, err := metadataFromHeader(http.Header{metaName: {metaValue}})
		if err == nil {
			for k := range md {
				if k != strings.ToLower(k) || len(k) > filesystem.MaxMetadataKeyBytes {
					t.Fatalf("metadata key %q accepted", k)
				}
			}
			if err := filesystem.ValidateMetadata(md); err != nil {
				t.Fatalf("accepted metadata %v is invalid: %v", md, err)
			}
		}

		acceptsGzip([]string{accept})

		mr := multipart.NewReader(bytes.NewReader(body), "B")
		for range 1000 {
			part, name, err := nextFilePart(mr)
			if err != nil {
				break
			}
			if name != "" {
				checkResolved(t, u, name)
			}
			if _, err := io.Copy(io.Discard, part); err != nil {
				break
			}
		}
	})
}

// checkResolved checks that a path a request names either is refused or
// resolves to an absolute, clean path without NUL bytes.
func checkResolved(t *testing.T, u identity.User, p string) {
	t.Helper()
	abs, err := u.Resolve(p)
	if err != nil {
		return
	}
	if !filepath.IsAbs(abs) || filepath.Clean(abs) != abs || strings.ContainsRune(abs, 0) {
		t.Fatalf("Resolve(%q) = %q", p, abs)
	}
}

func mustInt(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func ptr[T any](v T) *T { return &v }

// FuzzCheckSignature checks auth.CheckSignature as /files uses it: it never
// panics; a signature made by Sign is accepted exactly while it has not
// expired; and a signature is never accepted for any other path, operation,
// user or expiry than the ones Sign was given.
//
// The signed string "path:op:user:token[:exp]" is E2B's wire format and
// cannot change. Its fields are unambiguous only when the user has no ':'
// (the handler refuses such names; Linux has none) and the token has no ':'
// and is not a number (the platform's tokens are random strings); other
// inputs are skipped for the third property.
func FuzzCheckSignature(f *testing.F) {
	f.Add("/home/user/a.txt", "user", "tok", "v1_x", "/home/user/a.txt", "user", "", int64(0), false, false)
	f.Add("p:read:u", "", "tok", "", "p", "u:read:", "", int64(0), false, false)
	f.Add("p", "u", "tok", "", "p", "u", "1800000060", int64(1800000060), true, true)
	f.Add("p", "u", "tok", "", "p", "u", "01800000060", int64(1800000060), true, true)
	f.Add("p", "", "tok", "", "p", "", "", int64(-5), false, false)
	now := time.Unix(fixedUnix, 0)

	f.Fuzz(func(t *testing.T, path, user, token, sig, path2, user2, expStr string, exp int64, write, write2 bool) {
		op, op2 := auth.OpRead, auth.OpRead
		if write {
			op = auth.OpWrite
		}
		if write2 {
			op2 = auth.OpWrite
		}

		// Any signature: accepted only if it is Sign's for these inputs.
		if auth.CheckSignature(sig, path, op, user, token, expStr, now) == nil {
			n, perr := strconv.ParseInt(expStr, 10, 64)
			if token == "" || (expStr != "" && (perr != nil || n < now.Unix())) || sig != auth.Sign(path, op, user, token, n) {
				t.Fatalf("accepted signature %q for %q %s %q exp %q", sig, path, op, user, expStr)
			}
		}

		// Sign's own signature: accepted while not expired.
		good := auth.Sign(path, op, user, token, exp)
		goodExp := ""
		if exp != 0 {
			goodExp = strconv.FormatInt(exp, 10)
		}
		err := auth.CheckSignature(good, path, op, user, token, goodExp, now)
		if want := token != "" && (exp == 0 || exp >= now.Unix()); (err == nil) != want {
			t.Fatalf("Sign's signature for %q %s %q exp %d: got %v, want accepted=%v", path, op, user, exp, err, want)
		}

		// ... and for nothing else.
		if err := auth.CheckSignature(good, path2, op2, user2, token, expStr, now); err == nil {
			if strings.ContainsRune(user, ':') || strings.ContainsRune(user2, ':') || strings.ContainsRune(token, ':') {
				return
			}
			if _, err := strconv.ParseInt(token, 10, 64); err == nil {
				return
			}
			n, _ := strconv.ParseInt(expStr, 10, 64)
			sameExp := (exp == 0 && expStr == "") || (exp != 0 && expStr != "" && n == exp)
			if path2 != path || op2 != op || user2 != user || !sameExp {
				t.Fatalf("signature for (%q %s %q exp %d) accepted for (%q %s %q exp %q)", path, op, user, exp, path2, op2, user2, expStr)
			}
		}
	})
}
