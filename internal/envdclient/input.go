package envdclient

import (
	"context"
	"fmt"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
)

func byPid(pid uint32) *processpb.ProcessSelector {
	return &processpb.ProcessSelector{Selector: &processpb.ProcessSelector_Pid{Pid: pid}}
}

// call runs one unary RPC as op, giving its error a kind and envd's
// message.
func call(ctx context.Context, op string, rpc func(ctx context.Context) error) error {
	ctx, slot := withFailure(ctx)
	if err := rpc(ctx); err != nil {
		return rpcError(op, err, slot)
	}
	return nil
}

// SendStdin writes data to the stdin pipe of process pid. It waits while
// the process does not read, until ctx ends. A closed stdin is ErrConflict.
// Large data goes in several requests, in order; concurrent writers to one
// process may interleave between them.
func (c *Client) SendStdin(ctx context.Context, pid uint32, data []byte) error {
	return c.sendInput(ctx, fmt.Sprintf("send stdin to process %d", pid), pid, data, func(b []byte) *processpb.ProcessInput {
		return &processpb.ProcessInput{Input: &processpb.ProcessInput_Stdin{Stdin: b}}
	})
}

// SendPTYInput writes keystrokes to the terminal of process pid.
func (c *Client) SendPTYInput(ctx context.Context, pid uint32, data []byte) error {
	return c.sendInput(ctx, fmt.Sprintf("send pty input to process %d", pid), pid, data, func(b []byte) *processpb.ProcessInput {
		return &processpb.ProcessInput{Input: &processpb.ProcessInput_Pty{Pty: b}}
	})
}

// inputChunk is the most one SendInput request carries. envd answers a
// request only once the process has taken all of it, so a big input in one
// piece could wait on a slow reader past the response-header timeout; in
// pieces, each waits for one pipe's worth at most.
const inputChunk = 32 << 10

func (c *Client) sendInput(ctx context.Context, op string, pid uint32, data []byte, wrap func([]byte) *processpb.ProcessInput) error {
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), inputChunk)
		in := wrap(data[:n])
		data = data[n:]
		err := call(ctx, op, func(ctx context.Context) error {
			_, err := c.proc.SendInput(ctx, connect.NewRequest(&processpb.SendInputRequest{Process: byPid(pid), Input: in}))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// CloseStdin closes the stdin pipe of process pid: it reads EOF. Closing a
// closed stdin succeeds; a PTY process has no stdin to close (ErrInvalid).
func (c *Client) CloseStdin(ctx context.Context, pid uint32) error {
	return call(ctx, fmt.Sprintf("close stdin of process %d", pid), func(ctx context.Context) error {
		_, err := c.proc.CloseStdin(ctx, connect.NewRequest(&processpb.CloseStdinRequest{Process: byPid(pid)}))
		return err
	})
}

// writeAndClose writes data to pid's stdin, then closes it.
func (c *Client) writeAndClose(ctx context.Context, pid uint32, data []byte) error {
	if err := c.SendStdin(ctx, pid, data); err != nil {
		return err
	}
	return c.CloseStdin(ctx, pid)
}

// Signal sends sig ("SIGTERM" or "SIGKILL") to process pid and its process
// group; for a PTY process also to the terminal's foreground job.
func (c *Client) Signal(ctx context.Context, pid uint32, sig string) error {
	op := fmt.Sprintf("signal process %d", pid)
	var s processpb.Signal
	switch sig {
	case "SIGTERM":
		s = processpb.Signal_SIGNAL_SIGTERM
	case "SIGKILL":
		s = processpb.Signal_SIGNAL_SIGKILL
	default:
		return fmt.Errorf("%s: %w", op, errdefs.Invalid("unsupported signal %q: want SIGTERM or SIGKILL", sig))
	}
	return call(ctx, op, func(ctx context.Context) error {
		_, err := c.proc.SendSignal(ctx, connect.NewRequest(&processpb.SendSignalRequest{Process: byPid(pid), Signal: s}))
		return err
	})
}
