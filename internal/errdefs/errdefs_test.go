package errdefs

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"
)

func TestMappings(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   connect.Code
	}{
		{NotFound("x %d", 1), 404, connect.CodeNotFound},
		{fmt.Errorf("wrap: %w", AlreadyExists("x")), 409, connect.CodeAlreadyExists},
		{Invalid("x"), 400, connect.CodeInvalidArgument},
		{Unauthenticated("x"), 401, connect.CodeUnauthenticated},
		{Permission("x"), 403, connect.CodePermissionDenied},
		{Unavailable("x"), 503, connect.CodeUnavailable},
		{NoSpace("x"), 507, connect.CodeResourceExhausted},
		{TooLarge("x"), 413, connect.CodeResourceExhausted},
		{context.DeadlineExceeded, 504, connect.CodeDeadlineExceeded},
		{DataLoss("x"), 500, connect.CodeDataLoss},
		{errors.New("boom"), 500, connect.CodeInternal},
	} {
		if got := HTTPStatus(tc.err); got != tc.status {
			t.Errorf("HTTPStatus(%v) = %d, want %d", tc.err, got, tc.status)
		}
		if got := connect.CodeOf(ToConnect(tc.err)); got != tc.code {
			t.Errorf("ToConnect(%v) code = %v, want %v", tc.err, got, tc.code)
		}
	}
	if NotFound("file %s", "a").Error() != "file a" {
		t.Error("kind text leaked into the message")
	}
	if ToConnect(nil) != nil {
		t.Error("ToConnect(nil) != nil")
	}
}

func TestCodeAndFromConnect(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{NotFound("capsule x"), "not_found"},
		{Conflict("busy"), "conflict"},
		{Invalid("bad"), "invalid_argument"},
		{TooLarge("big"), "too_large"},
		{connect.NewError(connect.CodeNotFound, errors.New("no such process")), "not_found"},
		{connect.NewError(connect.CodeUnavailable, errors.New("down")), "unavailable"},
		{DataLoss("bad checksum"), "data_loss"},
		{connect.NewError(connect.CodeDataLoss, errors.New("bad checksum")), "data_loss"},
		{errors.New("boom"), "internal"},
	} {
		if got := Code(tc.err); got != tc.want {
			t.Errorf("Code(%v): got %q, want %q", tc.err, got, tc.want)
		}
	}
	err := FromConnect(connect.NewError(connect.CodeNotFound, errors.New("no such sandbox")))
	if !errors.Is(err, ErrNotFound) || err.Error() != "no such sandbox" {
		t.Fatalf("FromConnect: got %v (%T), want a not-found error with the server's message", err, err)
	}
	if FromConnect(nil) != nil {
		t.Fatal("FromConnect(nil) is not nil")
	}
}
