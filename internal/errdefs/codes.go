package errdefs

import (
	"context"
	"errors"

	"connectrpc.com/connect"
)

// Code maps an error to the stable code of its kind in REST error bodies
// ({"error":{"code":...}}); unknown errors are "internal". A *connect.Error
// is read through FromConnect.
func Code(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) && !isKind(err) {
		err = FromConnect(err)
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrAlreadyExists):
		return "already_exists"
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrNotAcceptable):
		return "invalid_argument"
	case errors.Is(err, ErrUnauthenticated):
		return "unauthenticated"
	case errors.Is(err, ErrPermission):
		return "permission_denied"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrExhausted):
		return "resource_exhausted"
	case errors.Is(err, ErrNoSpace):
		return "no_space"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrUnimplemented):
		return "unimplemented"
	case errors.Is(err, ErrDataLoss):
		return "data_loss"
	case errors.Is(err, ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "internal"
}

// FromConnect turns an error returned by a Connect client into an error of
// the matching kind, keeping the server's message. Errors that are not
// Connect errors, and nil, are returned as they are.
func FromConnect(err error) error {
	var ce *connect.Error
	if err == nil || !errors.As(err, &ce) {
		return err
	}
	kind := ConnectKind(ce.Code())
	if kind == nil {
		return err
	}
	return &kindError{kind: kind, msg: ce.Message()}
}

// ConnectKind returns the kind of a Connect code, or nil when none fits
// (internal, unknown). Canceled is context.Canceled.
func ConnectKind(code connect.Code) error { return connectKinds[code] }

var connectKinds = map[connect.Code]error{
	connect.CodeNotFound:           ErrNotFound,
	connect.CodeAlreadyExists:      ErrAlreadyExists,
	connect.CodeFailedPrecondition: ErrConflict,
	connect.CodeAborted:            ErrConflict,
	connect.CodeInvalidArgument:    ErrInvalid,
	connect.CodeOutOfRange:         ErrInvalid,
	connect.CodeUnauthenticated:    ErrUnauthenticated,
	connect.CodePermissionDenied:   ErrPermission,
	connect.CodeUnavailable:        ErrUnavailable,
	connect.CodeResourceExhausted:  ErrExhausted,
	connect.CodeUnimplemented:      ErrUnimplemented,
	connect.CodeDeadlineExceeded:   ErrDeadlineExceeded,
	connect.CodeCanceled:           context.Canceled,
	connect.CodeDataLoss:           ErrDataLoss,
}

// isKind reports whether err already carries one of the kinds.
func isKind(err error) bool {
	for _, k := range connectKinds {
		if errors.Is(err, k) {
			return true
		}
	}
	return errors.Is(err, ErrNoSpace) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrNotAcceptable)
}
