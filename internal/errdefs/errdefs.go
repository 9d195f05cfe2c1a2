// Package errdefs is Nestbox's one error vocabulary: a small set of kinds
// (not found, conflict, invalid, ...) that every component wraps its errors in,
// and the single place where a kind becomes an HTTP status or a Connect code.
// Any package may import it; it imports nothing of Nestbox's.
package errdefs

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"
)

// The kinds. Wrap them with fmt.Errorf("...: %w", errdefs.ErrNotFound) or use
// the constructors below; test with errors.Is.
var (
	ErrNotFound         = errors.New("not found")
	ErrAlreadyExists    = errors.New("already exists")
	ErrConflict         = errors.New("conflict")
	ErrInvalid          = errors.New("invalid argument")
	ErrUnauthenticated  = errors.New("unauthenticated")
	ErrPermission       = errors.New("permission denied")
	ErrUnavailable      = errors.New("unavailable")
	ErrExhausted        = errors.New("resource exhausted")
	ErrNoSpace          = errors.New("not enough space")
	ErrTooLarge         = errors.New("too large")
	ErrNotAcceptable    = errors.New("not acceptable")
	ErrUnimplemented    = errors.New("unimplemented")
	ErrDeadlineExceeded = errors.New("deadline exceeded")
	// ErrDataLoss: stored data failed its check (a snapshot whose
	// checksum does not match); it is kept for inspection, never used.
	ErrDataLoss = errors.New("data loss")
)

// kindError carries a kind and a message without repeating the kind's text.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func newf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// NotFound returns an error of kind ErrNotFound with the given message.
func NotFound(format string, args ...any) error { return newf(ErrNotFound, format, args...) }

// AlreadyExists returns an error of kind ErrAlreadyExists.
func AlreadyExists(format string, args ...any) error { return newf(ErrAlreadyExists, format, args...) }

// Conflict returns an error of kind ErrConflict.
func Conflict(format string, args ...any) error { return newf(ErrConflict, format, args...) }

// Invalid returns an error of kind ErrInvalid.
func Invalid(format string, args ...any) error { return newf(ErrInvalid, format, args...) }

// Unauthenticated returns an error of kind ErrUnauthenticated.
func Unauthenticated(format string, args ...any) error {
	return newf(ErrUnauthenticated, format, args...)
}

// Permission returns an error of kind ErrPermission.
func Permission(format string, args ...any) error { return newf(ErrPermission, format, args...) }

// Unavailable returns an error of kind ErrUnavailable.
func Unavailable(format string, args ...any) error { return newf(ErrUnavailable, format, args...) }

// NoSpace returns an error of kind ErrNoSpace.
func NoSpace(format string, args ...any) error { return newf(ErrNoSpace, format, args...) }

// TooLarge returns an error of kind ErrTooLarge.
func TooLarge(format string, args ...any) error { return newf(ErrTooLarge, format, args...) }

// NotAcceptable returns an error of kind ErrNotAcceptable.
func NotAcceptable(format string, args ...any) error { return newf(ErrNotAcceptable, format, args...) }

// Unimplemented returns an error of kind ErrUnimplemented.
func Unimplemented(format string, args ...any) error { return newf(ErrUnimplemented, format, args...) }

// DataLoss returns an error of kind ErrDataLoss.
func DataLoss(format string, args ...any) error { return newf(ErrDataLoss, format, args...) }

// HTTPStatus maps an error to the HTTP status of its kind; unknown errors are
// 500.
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrAlreadyExists), errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, ErrPermission):
		return http.StatusForbidden
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrExhausted):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrNoSpace):
		return http.StatusInsufficientStorage
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrNotAcceptable):
		return http.StatusNotAcceptable
	case errors.Is(err, ErrUnimplemented):
		return http.StatusNotImplemented
	case errors.Is(err, ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return 499
	}
	return http.StatusInternalServerError
}

// ConnectCode maps an error to the Connect code of its kind; unknown errors
// are CodeInternal. A *connect.Error keeps its own code.
func ConnectCode(err error) connect.Code {
	var ce *connect.Error
	switch {
	case errors.As(err, &ce):
		return ce.Code()
	case errors.Is(err, ErrNotFound):
		return connect.CodeNotFound
	case errors.Is(err, ErrAlreadyExists):
		return connect.CodeAlreadyExists
	case errors.Is(err, ErrConflict):
		return connect.CodeFailedPrecondition
	case errors.Is(err, ErrInvalid):
		return connect.CodeInvalidArgument
	case errors.Is(err, ErrUnauthenticated):
		return connect.CodeUnauthenticated
	case errors.Is(err, ErrPermission):
		return connect.CodePermissionDenied
	case errors.Is(err, ErrUnavailable):
		return connect.CodeUnavailable
	case errors.Is(err, ErrExhausted), errors.Is(err, ErrNoSpace):
		return connect.CodeResourceExhausted
	case errors.Is(err, ErrTooLarge):
		return connect.CodeResourceExhausted
	case errors.Is(err, ErrNotAcceptable):
		return connect.CodeInvalidArgument
	case errors.Is(err, ErrUnimplemented):
		return connect.CodeUnimplemented
	case errors.Is(err, ErrDataLoss):
		return connect.CodeDataLoss
	case errors.Is(err, ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return connect.CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return connect.CodeCanceled
	}
	return connect.CodeInternal
}

// ToConnect turns any error into a *connect.Error with the code of its kind.
// nil stays nil.
func ToConnect(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	return connect.NewError(ConnectCode(err), err)
}
