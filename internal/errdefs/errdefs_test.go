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
