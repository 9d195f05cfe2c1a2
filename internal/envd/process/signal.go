package process

import (
	"context"
	"fmt"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
)

// SendSignal sends SIGTERM or SIGKILL to a process's whole group, so that
// `bash -c 'sleep 100 & wait'` dies with its children. For a PTY process it
// also goes to the terminal's foreground group: an interactive shell runs
// each job in a group of its own.
func (s *Service) SendSignal(ctx context.Context, req *connect.Request[processpb.SendSignalRequest]) (*connect.Response[processpb.SendSignalResponse], error) {
	var sig unix.Signal
	switch req.Msg.GetSignal() {
	case processpb.Signal_SIGNAL_SIGTERM:
		sig = unix.SIGTERM
	case processpb.Signal_SIGNAL_SIGKILL:
		sig = unix.SIGKILL
	default:
		return nil, errdefs.ToConnect(errdefs.Invalid("send signal: unsupported signal %v", req.Msg.GetSignal()))
	}
	p, err := s.find(req.Msg.GetProcess())
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	if p.pty != nil {
		if fg := foreground(p.pty); fg > 0 && fg != int(p.pid) {
			if err := s.reaper.signal(fg, sig); err != nil {
				return nil, errdefs.ToConnect(fmt.Errorf("signal process group %d of process %d: %w", fg, p.pid, err))
			}
		}
	}
	if err := s.reaper.signal(int(p.pid), sig); err != nil {
		return nil, errdefs.ToConnect(fmt.Errorf("signal process %d: %w", p.pid, err))
	}
	return connect.NewResponse(&processpb.SendSignalResponse{}), nil
}
