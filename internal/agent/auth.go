package agent

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
)

// ProxyAuthHeader carries the agent token on /proxy/ requests. Their
// Authorization header belongs to whatever serves the port (envd reads its
// user from it, a tenant's app may use it), so the agent's credential
// travels in a header of its own, which the agent removes before the
// request goes on to the sandbox.
const ProxyAuthHeader = "Nestbox-Agent-Authorization"

// minTokenLen is the shortest token the agent accepts: 32 random bytes in
// hex are 64 characters; a shorter secret is a mistake, not a choice.
const minTokenLen = 32

// TokenFile returns the agent token kept in path, making a new one (32
// random bytes, hex) on first use: the file is written 0600 in a directory
// made 0700. created reports that the token is new (the caller prints
// where it is, so it can be copied to the control plane).
func TokenFile(path string) (token string, created bool, err error) {
	tok, err := ReadTokenFile(path)
	if err == nil {
		return tok, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("agent token: %w", err)
	}
	b := make([]byte, 32)
	rand.Read(b)
	tok = hex.EncodeToString(b)
	// Written whole to a temporary file, then linked into place: a
	// concurrent reader never sees a half-written token, and of two
	// processes making it at once the first link wins.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return "", false, fmt.Errorf("agent token: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(tok + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", false, fmt.Errorf("agent token: write %s: %w", tmp.Name(), err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, os.ErrExist) {
		tok, err := ReadTokenFile(path) // another process made it first
		return tok, false, err
	} else if err != nil {
		return "", false, fmt.Errorf("agent token: %w", err)
	}
	return tok, true, nil
}

// ReadTokenFile reads a token file as TokenFile writes it. A missing file
// is os.ErrNotExist; a file readable by others, or holding a token shorter
// than 32 characters, is refused.
func ReadTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", errdefs.Invalid("token file %s is readable by others (mode %v): chmod 600 it", path, st.Mode().Perm())
	}
	b := make([]byte, 4096)
	n, _ := f.Read(b)
	tok := strings.TrimSpace(string(b[:n]))
	if err := CheckToken(tok); err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	return tok, nil
}

// EventsToken is the bearer token an agent whose own token is agentToken
// posts its events with when it is given none (Config.EventsToken): an
// HMAC-SHA256 of a fixed label keyed by the agent token, in hex. A control
// plane that holds a copy of the agent token computes the same value, so
// a split deployment copies one file, and the token speaks for that one
// agent. It reveals nothing of the agent token: whoever reads it (the
// control plane's side of the events) cannot call the agent with it.
func EventsToken(agentToken string) string {
	m := hmac.New(sha256.New, []byte(agentToken))
	m.Write([]byte("nestbox host events v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// CheckToken refuses tokens too short to be secrets.
func CheckToken(tok string) error {
	if len(tok) < minTokenLen {
		return errdefs.Invalid("a token must be at least %d characters, got %d", minTokenLen, len(tok))
	}
	return nil
}

// authenticate wraps next so that it runs only for requests presenting the
// agent token: "Authorization: Bearer <token>" on the API, the
// ProxyAuthHeader on /proxy/. Only GET /health, which says nothing but
// "ok", is open. The comparison takes constant time. A request without the
// token gets 401 before any work: a Connect error (unauthenticated) on the
// API, a JSON body elsewhere.
func authenticate(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			next.ServeHTTP(w, r)
			return
		}
		header := "Authorization"
		proxied := strings.HasPrefix(r.URL.Path, "/proxy/")
		if proxied {
			header = ProxyAuthHeader
		}
		got := r.Header.Get(header)
		if proxied {
			// The sandbox never sees the agent's credential.
			r.Header.Del(ProxyAuthHeader)
		}
		// An agent without a token (New refuses to make one) serves nobody.
		if token == "" || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nestbox-agent"`)
			if !proxied && r.Method == http.MethodPost && strings.Count(r.URL.Path, "/") == 2 {
				// A Connect call: answer in its error format.
				connect.NewErrorWriter().Write(w, r, connect.NewError(connect.CodeUnauthenticated, errors.New("a valid agent token is required")))
				return
			}
			writeJSONError(w, http.StatusUnauthorized, "a valid agent token is required", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}
