package process

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"nestbox.dev/internal/envd/keepalive"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
)

// defaultTerm is TERM of a PTY process whose env does not set it.
const defaultTerm = "xterm-256color"

// timeoutHeader carries the stream deadline of the Connect protocol.
const timeoutHeader = "Connect-Timeout-Ms"

// Start runs a process and streams its events: start, data..., end. A
// client that goes away does not kill the process. The stream's timeout
// does, as in E2B's envd, where it is the SDK's timeoutMs: once the
// Connect-Timeout-Ms of the request has passed, the process's group gets
// SIGKILL.
func (s *Service) Start(ctx context.Context, req *connect.Request[processpb.StartRequest], stream *connect.ServerStream[processpb.StartResponse]) error {
	p, f, err := s.start(req.Header(), req.Msg)
	if err != nil {
		return errdefs.ToConnect(err)
	}
	return s.follow(ctx, p, f, keepalive.Interval(req.Header()), func(ev *processpb.ProcessEvent) error {
		return stream.Send(&processpb.StartResponse{Event: ev})
	})
}

// start forks the process of req and returns it with a follower that was
// subscribed before the first byte of output could be read.
func (s *Service) start(h http.Header, req *processpb.StartRequest) (*proc, *follower, error) {
	sp, err := s.specOf(h, req)
	if err != nil {
		return nil, nil, err
	}
	if err := s.track(); err != nil {
		return nil, nil, err
	}
	p, exited, outs, err := s.spawn(sp)
	if err != nil {
		s.wg.Done()
		return nil, nil, err
	}
	f := p.subscribe()
	s.procs.add(p)
	go s.supervise(p, exited, outs, sp.timeout)
	return p, f, nil
}

// spec is a validated Start request: everything spawn needs.
type spec struct {
	path  string   // the executable
	argv  []string // cmd as given, then args
	env   []string // sorted KEY=VALUE
	dir   string
	cred  *syscall.Credential // nil: run as envd's own user
	size  *winsize            // non-nil: run on a PTY of this size
	stdin bool                // give the process a stdin pipe
	// timeout is how long the process may run; zero means no limit.
	timeout time.Duration
	tag     *string
	config  *processpb.ProcessConfig // what List reports
}

func (s *Service) specOf(h http.Header, req *processpb.StartRequest) (*spec, error) {
	cfg := req.GetProcess()
	if cfg == nil {
		return nil, errdefs.Invalid("process config is required")
	}
	if cfg.GetCmd() == "" {
		return nil, errdefs.Invalid("empty command")
	}
	if strings.ContainsRune(cfg.GetCmd(), 0) || slices.ContainsFunc(cfg.GetArgs(), hasNUL) {
		return nil, errdefs.Invalid("command or arguments contain a NUL byte")
	}
	for k, v := range cfg.GetEnvs() {
		if k == "" || strings.ContainsAny(k, "=\x00") || hasNUL(v) {
			return nil, errdefs.Invalid("invalid env var %q", k)
		}
	}
	u, err := s.user(h)
	if err != nil {
		return nil, err
	}

	dir := cfg.GetCwd()
	if dir == "" {
		if dir = s.cfg.Settings.DefaultWorkdir(); dir == "" {
			dir = u.Home
		}
	}
	if dir, err = u.Resolve(dir); err != nil {
		return nil, err
	}
	switch st, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		return nil, errdefs.Invalid("cwd %s does not exist", dir)
	case err != nil:
		return nil, errdefs.Invalid("cwd %s: %v", dir, err)
	case !st.IsDir():
		return nil, errdefs.Invalid("cwd %s is not a directory", dir)
	}

	env := u.Env()
	maps.Copy(env, s.cfg.Settings.EnvVars())
	maps.Copy(env, cfg.GetEnvs())
	sp := &spec{
		argv:    append([]string{cfg.GetCmd()}, cfg.GetArgs()...),
		dir:     dir,
		cred:    u.Credential(),
		stdin:   req.Stdin == nil || req.GetStdin(), // absent: open, as for old clients
		tag:     req.Tag,
		timeout: timeoutOf(h),
	}
	if req.Pty != nil {
		if sp.size, err = sizeOf(req.GetPty().GetSize()); err != nil {
			return nil, err
		}
		if _, ok := env["TERM"]; !ok {
			env["TERM"] = defaultTerm
		}
		sp.stdin = false // the PTY is stdin
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		sp.env = append(sp.env, k+"="+env[k])
	}
	if sp.path, err = lookPath(cfg.GetCmd(), dir, env["PATH"]); err != nil {
		return nil, err
	}
	sp.config = proto.CloneOf(cfg)
	sp.config.Cwd = &dir
	return sp, nil
}

// timeoutOf reads the Connect-Timeout-Ms header; connect-go has already
// rejected a malformed one, and anything else means no limit.
func timeoutOf(h http.Header) time.Duration {
	ms, err := strconv.ParseInt(h.Get(timeoutHeader), 10, 64)
	if err != nil || ms <= 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

func hasNUL(s string) bool { return strings.ContainsRune(s, 0) }
