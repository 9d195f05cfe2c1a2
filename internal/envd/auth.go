package envd

import (
	"net/http"

	"nestbox.dev/internal/envd/auth"
)

// tokenHeader carries the access token that /init set.
const tokenHeader = "X-Access-Token"

const unauthorizedMessage = "unauthorized access, please provide a valid access token or method signing if supported"

// requireToken rejects plain HTTP requests without the access token.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !auth.CheckToken(r.Header.Get(tokenHeader), s.settings.AccessToken()) {
			writeError(w, http.StatusUnauthorized, unauthorizedMessage)
			return
		}
		next.ServeHTTP(w, r)
	})
}
