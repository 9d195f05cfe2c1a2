package envdclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
)

// kindError gives an error from envd an errdefs kind while keeping envd's
// message and the original error: errors.Is finds the kind, and errors.As
// still finds a *connect.Error.
type kindError struct {
	kind  error
	msg   string
	cause error
}

func (e *kindError) Error() string   { return e.msg }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.cause} }

// rpcError describes a failed RPC of operation op. slot holds the
// plain-HTTP error the transport saw, if any; it wins over connect-go's
// reading because it has the message.
func rpcError(op string, err error, slot *failure) error {
	if status, msg := slot.get(); status != 0 {
		if kind := statusKind(status); kind != nil {
			return fmt.Errorf("%s: %w", op, &kindError{kind: kind, msg: msg, cause: err})
		}
		return fmt.Errorf("%s: %s: %w", op, msg, err)
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return fmt.Errorf("%s: %w", op, err)
	}
	kind := codeKind(ce.Code())
	if kind == nil {
		// Canceled keeps context.Canceled in the chain through ce.
		return fmt.Errorf("%s: %w", op, err)
	}
	msg := ce.Message()
	if msg == "" {
		msg = ce.Code().String()
	}
	return fmt.Errorf("%s: %w", op, &kindError{kind: kind, msg: msg, cause: err})
}

// codeKind maps a Connect code to its errdefs kind; nil means no kind fits.
// envd sends resource_exhausted for a full disk and for too much of
// anything alike: ErrExhausted.
func codeKind(code connect.Code) error { return errdefs.ConnectKind(code) }

// statusKind maps an HTTP status of envd or the agent's proxy to its
// errdefs kind; nil means no kind fits.
func statusKind(status int) error {
	switch status {
	case http.StatusBadRequest:
		return errdefs.ErrInvalid
	case http.StatusUnauthorized:
		return errdefs.ErrUnauthenticated
	case http.StatusForbidden:
		return errdefs.ErrPermission
	case http.StatusNotFound:
		return errdefs.ErrNotFound
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return errdefs.ErrUnimplemented
	case http.StatusNotAcceptable:
		return errdefs.ErrNotAcceptable
	case http.StatusConflict:
		// envd's /files answers 409 for an existing path (EEXIST).
		return errdefs.ErrAlreadyExists
	case http.StatusRequestEntityTooLarge:
		return errdefs.ErrTooLarge
	case http.StatusTooManyRequests:
		return errdefs.ErrExhausted
	case http.StatusInsufficientStorage:
		return errdefs.ErrNoSpace
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		// 502 is the agent's proxy: the capsule or its envd is gone.
		return errdefs.ErrUnavailable
	case http.StatusGatewayTimeout:
		return errdefs.ErrDeadlineExceeded
	}
	return nil
}

// statusError describes a non-2xx answer to a plain HTTP request (/files,
// /health) from its JSON body, and closes nothing: the caller owns resp.
func statusError(op string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg, ok := plainError(body)
	if !ok {
		msg = resp.Status
	}
	if kind := statusKind(resp.StatusCode); kind != nil {
		return fmt.Errorf("%s: %w", op, &kindError{kind: kind, msg: msg, cause: fmt.Errorf("HTTP %s", resp.Status)})
	}
	return fmt.Errorf("%s: HTTP %s: %s", op, resp.Status, msg)
}

// transportError describes a plain HTTP request that got no answer. The
// caller's own cancellation stays context.Canceled; a timeout is
// ErrDeadlineExceeded; anything else (refused, reset) ErrUnavailable.
func transportError(op string, err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%s: %w", op, &kindError{kind: errdefs.ErrDeadlineExceeded, msg: err.Error(), cause: err})
	}
	return fmt.Errorf("%s: %w", op, &kindError{kind: errdefs.ErrUnavailable, msg: err.Error(), cause: err})
}
