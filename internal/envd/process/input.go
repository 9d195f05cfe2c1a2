package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
)

// SendInput writes to a process's stdin pipe or PTY.
func (s *Service) SendInput(ctx context.Context, req *connect.Request[processpb.SendInputRequest]) (*connect.Response[processpb.SendInputResponse], error) {
	p, err := s.find(req.Msg.GetProcess())
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	if err := p.write(ctx, req.Msg.GetInput()); err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(&processpb.SendInputResponse{}), nil
}

// StreamInput writes the data of one client stream to a process, in order.
// The first message must select the process; keepalives are ignored.
func (s *Service) StreamInput(ctx context.Context, stream *connect.ClientStream[processpb.StreamInputRequest]) (*connect.Response[processpb.StreamInputResponse], error) {
	var p *proc
	for stream.Receive() {
		switch ev := stream.Msg().GetEvent().(type) {
		case *processpb.StreamInputRequest_Start:
			if p != nil {
				return nil, errdefs.ToConnect(errdefs.Invalid("stream input: second start event"))
			}
			var err error
			if p, err = s.find(ev.Start.GetProcess()); err != nil {
				return nil, errdefs.ToConnect(err)
			}
		case *processpb.StreamInputRequest_Data:
			if p == nil {
				return nil, errdefs.ToConnect(errdefs.Invalid("stream input: data before the start event"))
			}
			if err := p.write(ctx, ev.Data.GetInput()); err != nil {
				return nil, errdefs.ToConnect(err)
			}
		case *processpb.StreamInputRequest_Keepalive:
		default:
			return nil, errdefs.ToConnect(errdefs.Invalid("stream input: empty event"))
		}
	}
	if err := stream.Err(); err != nil {
		return nil, err
	}
	if p == nil {
		return nil, errdefs.ToConnect(errdefs.Invalid("stream input: no start event"))
	}
	return connect.NewResponse(&processpb.StreamInputResponse{}), nil
}

// CloseStdin closes a process's stdin pipe, after any write in progress.
// Closing a closed (or never opened) stdin succeeds.
func (s *Service) CloseStdin(ctx context.Context, req *connect.Request[processpb.CloseStdinRequest]) (*connect.Response[processpb.CloseStdinResponse], error) {
	p, err := s.find(req.Msg.GetProcess())
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	if p.pty != nil {
		return nil, errdefs.ToConnect(errdefs.Invalid("process %d has a PTY and no stdin to close: send Ctrl-D (0x04) as pty input", p.pid))
	}
	if err := p.closeStdin(false); err != nil {
		return nil, errdefs.ToConnect(fmt.Errorf("close stdin of process %d: %w", p.pid, err))
	}
	return connect.NewResponse(&processpb.CloseStdinResponse{}), nil
}

// write writes one input to p. Writes are serialised; one that blocks
// (the process does not read) ends with ctx.
func (p *proc) write(ctx context.Context, in *processpb.ProcessInput) error {
	switch v := in.GetInput().(type) {
	case *processpb.ProcessInput_Stdin:
		if p.pty != nil {
			return errdefs.Invalid("process %d has a PTY: send its input as pty", p.pid)
		}
		p.inMu.Lock()
		defer p.inMu.Unlock()
		if p.stdin == nil || p.stdinClosed {
			return errdefs.Conflict("stdin of process %d is closed", p.pid)
		}
		if err := writeCtx(ctx, p.stdin, v.Stdin); err != nil {
			return fmt.Errorf("write stdin of process %d: %w", p.pid, inputError(err))
		}
	case *processpb.ProcessInput_Pty:
		if p.pty == nil {
			return errdefs.Invalid("process %d has no PTY: send its input as stdin", p.pid)
		}
		p.inMu.Lock()
		defer p.inMu.Unlock()
		if err := writeCtx(ctx, p.pty, v.Pty); err != nil {
			return fmt.Errorf("write pty of process %d: %w", p.pid, inputError(err))
		}
	default:
		return errdefs.Invalid("input: stdin or pty data is required")
	}
	return nil
}

// closeStdin closes the stdin pipe. With abort, a write in progress is cut
// short first: supervise uses it once the process has ended.
func (p *proc) closeStdin(abort bool) error {
	if p.stdin == nil {
		return nil
	}
	if abort {
		p.stdin.SetWriteDeadline(time.Now())
	}
	p.inMu.Lock()
	defer p.inMu.Unlock()
	if p.stdinClosed {
		return nil
	}
	p.stdinClosed = true
	return p.stdin.Close()
}

// writeCtx writes all of b to f (which must be pollable), giving up when
// ctx ends.
func writeCtx(ctx context.Context, f *os.File, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		f.SetWriteDeadline(time.Now())
	})
	_, err := f.Write(b)
	if !stop() {
		// The deadline was set; wait until it is, then clear it for the
		// next writer.
		<-fired
		f.SetWriteDeadline(time.Time{})
		if err != nil {
			err = ctx.Err()
		}
	}
	return err
}

// inputError gives a write error its kind: a process that no longer reads
// its input is a failed precondition, not an internal error.
func inputError(err error) error {
	switch {
	case errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.EIO), errors.Is(err, os.ErrClosed):
		return kinded{kind: errdefs.ErrConflict, err: err}
	}
	return err
}
