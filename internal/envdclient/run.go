package envdclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
)

// guardSlack is how long after a Run's timeout the client stops waiting for
// envd's kill to show, should envd not enforce the timeout.
const guardSlack = 10 * time.Second

// Run runs req.Cmd to its end and returns its exit code and output. The
// process gets req.Stdin, then EOF (no stdin at all without it). It is
// killed after req.TimeoutSeconds (zero means 60), and the result says
// "timed out"; it is also killed when ctx ends first, and Run returns ctx's
// error. req.Background is ignored. Of stdout and of stderr Run keeps
// Config.MaxOutputBytes each; output beyond that is read and dropped, and
// Error says so.
//
// A process that exits with a non-zero code or is killed is a result, not
// an error: Run's error means the process could not be run or followed.
func (c *Client) Run(ctx context.Context, req nestbox.ExecRequest) (nestbox.ExecResult, error) {
	req.Background = false
	sr, err := startRequest(req)
	if err != nil {
		return nestbox.ExecResult{}, err
	}
	hasStdin := len(req.Stdin) > 0
	sr.Stdin = &hasStdin
	timeout := execTimeout(req)
	s, err := c.start(ctx, sr, req.User, timeout)
	if err != nil {
		return nestbox.ExecResult{}, err
	}
	defer s.Close()
	res := nestbox.ExecResult{Pid: s.pid}

	var guarded atomic.Bool
	guard := time.AfterFunc(timeout+guardSlack, func() {
		guarded.Store(true)
		s.Close()
	})
	defer guard.Stop()

	// Stdin is written while output is read: a process may answer before
	// it has read all its input, and envd cuts off a stream that is not
	// read.
	var (
		stdinErr error
		wg       sync.WaitGroup
	)
	inCtx, stopInput := context.WithCancel(ctx)
	if hasStdin {
		wg.Go(func() {
			stdinErr = c.SendStdin(inCtx, s.pid, req.Stdin)
			// Close even after a failed write, so the process is not left
			// waiting for input that will not come.
			if err := c.CloseStdin(inCtx, s.pid); stdinErr == nil {
				stdinErr = err
			}
		})
	}
	defer func() {
		stopInput()
		wg.Wait()
	}()

	stdout, stderr := capped{max: c.maxOutput}, capped{max: c.maxOutput}
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			c.kill(ctx, s.pid)
			if guarded.Load() {
				res.ExitCode, res.Error = -1, errTimedOut
				break
			}
			return nestbox.ExecResult{}, err
		}
		switch m.Type {
		case msgStdout:
			stdout.write(m.Data)
		case msgStderr:
			stderr.write(m.Data)
		case msgExit:
			res.ExitCode, res.Error = m.ExitCode, m.Error
		}
	}
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	res.StdoutTruncated, res.StderrTruncated = stdout.over, stderr.over
	var notes []string
	if res.Error != "" {
		notes = append(notes, res.Error)
	}
	for _, o := range []struct {
		name string
		out  *capped
	}{{"stdout", &stdout}, {"stderr", &stderr}} {
		if o.out.over {
			notes = append(notes, fmt.Sprintf("%s truncated to %d bytes", o.name, o.out.max))
		}
	}
	res.Error = strings.Join(notes, "; ")

	stopInput()
	wg.Wait()
	// Input that found the process gone is moot now that it has ended.
	if stdinErr != nil && !errors.Is(stdinErr, errdefs.ErrConflict) && !errors.Is(stdinErr, errdefs.ErrNotFound) && !errors.Is(stdinErr, context.Canceled) {
		return res, stdinErr
	}
	return res, nil
}

// kill sends SIGKILL to pid, best effort, even when ctx has ended: Run
// does not leave behind a process whose output nobody will read.
func (c *Client) kill(ctx context.Context, pid uint32) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = c.Signal(ctx, pid, "SIGKILL") // it may well be gone already
}

// capped keeps the first max bytes written to it and notes the rest.
type capped struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *capped) write(p []byte) {
	if room := b.max - b.Len(); len(p) > room {
		p, b.over = p[:room], true
	}
	b.Write(p)
}
