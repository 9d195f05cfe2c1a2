package envdclient

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
)

// everyCall runs one call of each transport: a unary RPC, a streaming RPC,
// a download, an upload and the health check.
func everyCall(ctx context.Context, c *Client) map[string]error {
	errs := map[string]error{}
	_, errs["list"] = c.List(ctx)
	_, errs["run"] = c.Run(ctx, nestbox.ExecRequest{Cmd: []string{"true"}})
	_, errs["stat"] = c.Stat(ctx, "/", "")
	body, _, err := c.Download(ctx, "/etc/hostname", "")
	if err == nil {
		body.Close()
	}
	errs["download"] = err
	_, errs["upload"] = c.Upload(ctx, "/tmp/envdclient-never", "", bytes.NewReader([]byte("x")))
	return errs
}

func TestAccessToken(t *testing.T) {
	env := newTestEnv(t)
	env.setToken("secret")
	ctx := testCtx(t)
	for name, err := range everyCall(ctx, env.client("wrong")) {
		if !errors.Is(err, errdefs.ErrUnauthenticated) && !errors.Is(err, errdefs.ErrPermission) {
			t.Errorf("%s with a wrong token: got %v, want unauthenticated", name, err)
		}
	}
	// Health stays open, as in E2B's envd.
	if err := env.client("wrong").Health(ctx); err != nil {
		t.Errorf("health with a wrong token: %v", err)
	}
	good := env.client("secret")
	if got, err := good.Run(ctx, nestbox.ExecRequest{Cmd: []string{"echo", "in"}}); err != nil || got.Stdout != "in\n" {
		t.Fatalf("run with the token: got %+v, %v", got, err)
	}
	if _, _, err := good.Download(ctx, "/no/such/file", ""); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("download with the token: got %v, want not found", err)
	}
}

// TestCapsuleGone checks the agent proxy's 502: every transport turns it
// into ErrUnavailable with the proxy's message.
func TestCapsuleGone(t *testing.T) {
	env := newTestEnv(t)
	c := New(Config{BaseURL: env.baseURL("cap-gone")})
	ctx := testCtx(t)
	errs := everyCall(ctx, c)
	errs["health"] = c.Health(ctx)
	for name, err := range errs {
		if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "The sandbox was not found") {
			t.Errorf("%s of a gone capsule: got %v, want unavailable with the proxy's message", name, err)
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	c := New(Config{BaseURL: "http://" + addr})
	ctx := testCtx(t)
	errs := everyCall(ctx, c)
	errs["health"] = c.Health(ctx)
	for name, err := range errs {
		if !errors.Is(err, errdefs.ErrUnavailable) {
			t.Errorf("%s with envd down: got %v, want unavailable", name, err)
		}
	}
}

func TestCancelled(t *testing.T) {
	env := newTestEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, err := range everyCall(ctx, env.client("")) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: got %v, want context.Canceled", name, err)
		}
	}
}

func TestHealth(t *testing.T) {
	if err := newTestEnv(t).client("").Health(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestRPCErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		code connect.Code
		kind error
	}{
		{connect.CodeNotFound, errdefs.ErrNotFound},
		{connect.CodeInvalidArgument, errdefs.ErrInvalid},
		{connect.CodeAlreadyExists, errdefs.ErrAlreadyExists},
		{connect.CodeFailedPrecondition, errdefs.ErrConflict},
		{connect.CodePermissionDenied, errdefs.ErrPermission},
		{connect.CodeUnauthenticated, errdefs.ErrUnauthenticated},
		{connect.CodeUnavailable, errdefs.ErrUnavailable},
		{connect.CodeDeadlineExceeded, errdefs.ErrDeadlineExceeded},
		{connect.CodeResourceExhausted, errdefs.ErrExhausted},
		{connect.CodeUnimplemented, errdefs.ErrUnimplemented},
	} {
		err := rpcError("stat /x", connect.NewError(tc.code, errors.New("envd says")), nil)
		if !errors.Is(err, tc.kind) || err.Error() != "stat /x: envd says" {
			t.Errorf("code %v: got %q, want kind %q and envd's message", tc.code, err, tc.kind)
		}
		if connect.CodeOf(err) != tc.code {
			t.Errorf("code %v: the connect error is no longer in the chain", tc.code)
		}
	}
	if err := rpcError("x", connect.NewError(connect.CodeInternal, errors.New("boom")), nil); errdefs.HTTPStatus(err) != 500 {
		t.Errorf("internal: got %v with status %d, want no kind", err, errdefs.HTTPStatus(err))
	}
}

func TestHTTPErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		status int
		kind   error
	}{
		{400, errdefs.ErrInvalid},
		{401, errdefs.ErrUnauthenticated},
		{403, errdefs.ErrPermission},
		{404, errdefs.ErrNotFound},
		{409, errdefs.ErrAlreadyExists},
		{413, errdefs.ErrTooLarge},
		{429, errdefs.ErrExhausted},
		{502, errdefs.ErrUnavailable},
		{503, errdefs.ErrUnavailable},
		{504, errdefs.ErrDeadlineExceeded},
		{507, errdefs.ErrNoSpace},
		{500, nil},
	} {
		if got := statusKind(tc.status); got != tc.kind {
			t.Errorf("status %d: got kind %v, want %v", tc.status, got, tc.kind)
		}
	}
}

func TestStatMode(t *testing.T) {
	for _, tc := range []struct {
		perm        uint32
		permissions string
		want        uint32
	}{
		{0o644, "-rw-r--r--", 0o100644},
		{0o755, "drwxr-xr-x", 0o040755},
		{0o777, "dtrwxrwxrwx", 0o041777},
		{0o755, "urwxr-xr-x", 0o104755},
		{0o755, "gurwxr-xr-x", 0o106755},
		{0o777, "Lrwxrwxrwx", 0o120777},
		{0o666, "Dcrw-rw-rw-", 0o020666},
		{0o660, "Drw-rw----", 0o060660},
		{0o644, "prw-r--r--", 0o010644},
		{0o755, "Srwxr-xr-x", 0o140755},
		{0o644, "", 0o100644}, // an envd that sends no permissions
	} {
		if got := statMode(tc.perm, tc.permissions); got != tc.want {
			t.Errorf("statMode(%o, %q): got %o, want %o", tc.perm, tc.permissions, got, tc.want)
		}
	}
}
