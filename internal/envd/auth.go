package envd

import (
	"context"
	"net/http"

	"connectrpc.com/connect"

	"nestbox.dev/internal/envd/auth"
	"nestbox.dev/internal/envd/settings"
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

// tokenInterceptor rejects RPCs without the access token.
type tokenInterceptor struct {
	settings *settings.Settings
}

func (i *tokenInterceptor) check(h http.Header) error {
	if auth.CheckToken(h.Get(tokenHeader), i.settings.AccessToken()) {
		return nil
	}
	return connect.NewError(connect.CodeUnauthenticated, errUnauthorized)
}

type unauthorizedError struct{}

func (unauthorizedError) Error() string { return unauthorizedMessage }

var errUnauthorized error = unauthorizedError{}

func (i *tokenInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := i.check(req.Header()); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (i *tokenInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *tokenInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := i.check(conn.RequestHeader()); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}
