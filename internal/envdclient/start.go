package envdclient

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
)

// defaultExecTimeout bounds a foreground exec whose request gives no
// timeout, as the API documents for ExecRequest.TimeoutSeconds.
const defaultExecTimeout = 60 * time.Second

// keepaliveSeconds asks envd for a keepalive event this often on a quiet
// stream, so that proxies between here and envd do not drop it as idle.
const keepaliveSeconds = "30"

// Start starts req.Cmd and returns a stream of its events, beginning with
// "started". The process runs until it exits, is signalled, or its timeout
// (req.TimeoutSeconds; zero means no limit: the caller follows or
// detaches from the process) passes and envd kills it; closing the stream or cancelling ctx does not
// end it. With req.Stdin the data is written and stdin closed; without
// it stdin stays open for SendStdin, unless req.Background. A caller that
// starts a background process may read "started" and close the stream.
//
// The stream must be read steadily: envd cuts off a follower that falls
// far behind for a few seconds.
func (c *Client) Start(ctx context.Context, req nestbox.ExecRequest) (*Stream, error) {
	sr, err := startRequest(req)
	if err != nil {
		return nil, err
	}
	timeout := time.Duration(req.TimeoutSeconds) * time.Second
	s, err := c.start(ctx, sr, req.User, timeout)
	if err != nil {
		return nil, err
	}
	if len(req.Stdin) > 0 {
		if err := c.writeAndClose(ctx, s.pid, req.Stdin); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// start opens the Start stream of sr as user; envd kills the process after
// timeout unless it is zero.
func (c *Client) start(ctx context.Context, sr *processpb.StartRequest, user string, timeout time.Duration) (*Stream, error) {
	op := fmt.Sprintf("start process %q", sr.GetProcess().GetCmd())
	return openStream(ctx, op, sr.GetTag(), timeout, func(ctx context.Context) (source, error) {
		r := request(sr, user)
		r.Header().Set("Keepalive-Ping-Interval", keepaliveSeconds)
		if timeout > 0 {
			// Set by hand: the stream's context has no deadline (see
			// openStream), and this is the one envd must enforce.
			r.Header().Set("Connect-Timeout-Ms", strconv.FormatInt(timeout.Milliseconds(), 10))
		}
		st, err := c.proc.Start(ctx, r)
		if err != nil {
			return source{}, err
		}
		return sourceOf(st), nil
	})
}

// ConnectPid follows the running process pid from now on: output from
// before the call is not replayed.
func (c *Client) ConnectPid(ctx context.Context, pid uint32) (*Stream, error) {
	op := fmt.Sprintf("connect to process %d", pid)
	return c.connect(ctx, op, "", &processpb.ProcessSelector{Selector: &processpb.ProcessSelector_Pid{Pid: pid}})
}

// ConnectTag follows the oldest running process started with tag.
func (c *Client) ConnectTag(ctx context.Context, tag string) (*Stream, error) {
	if tag == "" {
		return nil, errdefs.Invalid("connect to process: empty tag")
	}
	op := fmt.Sprintf("connect to process tagged %q", tag)
	return c.connect(ctx, op, tag, &processpb.ProcessSelector{Selector: &processpb.ProcessSelector_Tag{Tag: tag}})
}

func (c *Client) connect(ctx context.Context, op, tag string, sel *processpb.ProcessSelector) (*Stream, error) {
	return openStream(ctx, op, tag, 0, func(ctx context.Context) (source, error) {
		r := connect.NewRequest(&processpb.ConnectRequest{Process: sel})
		r.Header().Set("Keepalive-Ping-Interval", keepaliveSeconds)
		st, err := c.proc.Connect(ctx, r)
		if err != nil {
			return source{}, err
		}
		return sourceOf(st), nil
	})
}

// startRequest translates an ExecRequest for envd. An empty Cwd or User
// leaves envd's defaults (the user's home, the capsule's default user).
func startRequest(req nestbox.ExecRequest) (*processpb.StartRequest, error) {
	if len(req.Cmd) == 0 || req.Cmd[0] == "" {
		return nil, errdefs.Invalid("start process: empty command")
	}
	if req.TimeoutSeconds < 0 {
		return nil, errdefs.Invalid("start process %q: negative timeout", req.Cmd[0])
	}
	cfg := &processpb.ProcessConfig{Cmd: req.Cmd[0], Args: req.Cmd[1:], Envs: req.Env}
	if req.Cwd != "" {
		cfg.Cwd = &req.Cwd
	}
	// A background process without input gets no stdin: one that reads
	// it sees EOF at once instead of waiting forever.
	stdin := len(req.Stdin) > 0 || !req.Background
	sr := &processpb.StartRequest{Process: cfg, Stdin: &stdin}
	if req.Tag != "" {
		sr.Tag = &req.Tag
	}
	return sr, nil
}

// execTimeout is how long Run lets a process run: req.TimeoutSeconds, or
// 60 s.
func execTimeout(req nestbox.ExecRequest) time.Duration {
	if req.TimeoutSeconds > 0 {
		return time.Duration(req.TimeoutSeconds) * time.Second
	}
	return defaultExecTimeout
}
