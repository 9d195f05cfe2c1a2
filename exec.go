package nestbox

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"time"
)

// ExecOption sets a field of the ExecRequest that Exec and Start send.
type ExecOption func(*ExecRequest)

// WithEnv adds environment variables to the process's environment.
func WithEnv(env map[string]string) ExecOption {
	return func(r *ExecRequest) {
		if r.Env == nil {
			r.Env = make(map[string]string, len(env))
		}
		maps.Copy(r.Env, env)
	}
}

// WithCwd sets the process's working directory (default: the user's home).
func WithCwd(dir string) ExecOption { return func(r *ExecRequest) { r.Cwd = dir } }

// WithUser runs the process as this user (default "user"; "root" is
// allowed).
func WithUser(user string) ExecOption { return func(r *ExecRequest) { r.User = user } }

// WithStdin writes b to the process's stdin and then closes it.
func WithStdin(b []byte) ExecOption { return func(r *ExecRequest) { r.Stdin = b } }

// WithTimeout kills the process after d, rounded up to a second. Without
// it a one-shot Exec is killed after 60 s and a background process runs
// until the capsule ends.
func WithTimeout(d time.Duration) ExecOption {
	return func(r *ExecRequest) { r.TimeoutSeconds = int((d + time.Second - 1) / time.Second) }
}

// WithTag names a background process so that AttachTag finds it again.
func WithTag(tag string) ExecOption { return func(r *ExecRequest) { r.Tag = tag } }

// NewExecRequest returns the request for cmd with the options applied.
func NewExecRequest(cmd []string, opts ...ExecOption) ExecRequest {
	r := ExecRequest{Cmd: cmd}
	for _, o := range opts {
		o(&r)
	}
	return r
}

// Exec runs cmd in the capsule, waits until it exits and returns its exit
// code and output. A non-zero exit code is not an error; ExecResult.Error
// says why a process that did not exit normally ended.
func (h *Handle) Exec(ctx context.Context, cmd []string, opts ...ExecOption) (ExecResult, error) {
	req := NewExecRequest(cmd, opts...)
	req.Background = false
	return h.exec(ctx, req)
}

// Start starts cmd in the background and returns its pid at once; the
// process keeps running after the call. Attach or AttachTag (with WithTag)
// follow its output.
func (h *Handle) Start(ctx context.Context, cmd []string, opts ...ExecOption) (uint32, error) {
	req := NewExecRequest(cmd, opts...)
	req.Background = true
	res, err := h.exec(ctx, req)
	return res.Pid, err
}

func (h *Handle) exec(ctx context.Context, req ExecRequest) (ExecResult, error) {
	var res ExecResult
	if len(req.Cmd) == 0 {
		return res, fmt.Errorf("%w: empty command", ErrInvalid)
	}
	err := h.c.do(ctx, http.MethodPost, pathf("/v1/capsules/%s/exec", h.id), nil, req, &res)
	return res, err
}

// Processes lists the processes running in the capsule that the API
// started.
func (h *Handle) Processes(ctx context.Context) ([]Process, error) {
	var l ProcessList
	err := h.c.do(ctx, http.MethodGet, pathf("/v1/capsules/%s/processes", h.id), nil, nil, &l)
	return l.Processes, err
}

// Signal is a signal that the API can send to a process.
type Signal string

// The signals the API accepts.
const (
	SignalTerm Signal = "SIGTERM"
	SignalKill Signal = "SIGKILL"
)

// Signal sends sig to the process with this pid.
func (h *Handle) Signal(ctx context.Context, pid uint32, sig Signal) error {
	return h.c.do(ctx, http.MethodPost, pathf("/v1/capsules/%s/processes/%s/signal", h.id, pid), nil, SignalRequest{Signal: string(sig)}, nil)
}
