package process

import (
	"context"
	"fmt"
	"math"
	"os"

	"connectrpc.com/connect"
	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
)

// Size of a PTY whose request gives none (or zero).
const (
	defaultCols = 80
	defaultRows = 24
)

type winsize = unix.Winsize

// sizeOf validates a requested PTY size; zero fields take the defaults.
func sizeOf(sz *processpb.PTY_Size) (*winsize, error) {
	cols, rows := sz.GetCols(), sz.GetRows()
	if cols > math.MaxUint16 || rows > math.MaxUint16 {
		return nil, errdefs.Invalid("pty size %dx%d: too large", cols, rows)
	}
	if cols == 0 {
		cols = defaultCols
	}
	if rows == 0 {
		rows = defaultRows
	}
	return &winsize{Col: uint16(cols), Row: uint16(rows)}, nil
}

// openPTY opens a PTY pair of the given size. The master comes back
// non-blocking, so that supervise can cut a read with a deadline and input
// can be abandoned with its context: creack/pty hands it over in blocking
// mode (it calls Fd), so it is replaced by a non-blocking duplicate.
func openPTY(size *winsize) (master, tty *os.File, err error) {
	m, tty, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	defer m.Close()
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err == nil {
		err = unix.SetNonblock(fd, true)
		if err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		tty.Close()
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	// os.NewFile sees O_NONBLOCK and puts the file in the runtime poller.
	master = os.NewFile(uintptr(fd), m.Name())
	if err := setSize(master, size); err != nil {
		master.Close()
		tty.Close()
		return nil, nil, err
	}
	return master, tty, nil
}

// setSize sets the window size (TIOCSWINSZ) through the master without
// putting it in blocking mode; the kernel sends SIGWINCH to the terminal's
// foreground group.
func setSize(master *os.File, size *winsize) error {
	rc, err := master.SyscallConn()
	if err != nil {
		return fmt.Errorf("resize pty: %w", err)
	}
	var ioctlErr error
	if err := rc.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, size)
	}); err != nil {
		return fmt.Errorf("resize pty: %w", err)
	}
	if ioctlErr != nil {
		return fmt.Errorf("resize pty: %w", ioctlErr)
	}
	return nil
}

// foreground returns the foreground process group of the PTY, or 0.
func foreground(master *os.File) int {
	rc, err := master.SyscallConn()
	if err != nil {
		return 0
	}
	pgrp := 0
	rc.Control(func(fd uintptr) {
		if n, err := unix.IoctlGetInt(int(fd), unix.TIOCGPGRP); err == nil {
			pgrp = n
		}
	})
	return pgrp
}

// Update resizes a process's PTY. A request without a PTY changes nothing.
func (s *Service) Update(ctx context.Context, req *connect.Request[processpb.UpdateRequest]) (*connect.Response[processpb.UpdateResponse], error) {
	p, err := s.find(req.Msg.GetProcess())
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	if req.Msg.Pty != nil {
		if p.pty == nil {
			return nil, errdefs.ToConnect(errdefs.Invalid("process %d has no PTY to resize", p.pid))
		}
		size, err := sizeOf(req.Msg.GetPty().GetSize())
		if err != nil {
			return nil, errdefs.ToConnect(err)
		}
		if err := setSize(p.pty, size); err != nil {
			return nil, errdefs.ToConnect(fmt.Errorf("update process %d: %w", p.pid, inputError(err)))
		}
	}
	return connect.NewResponse(&processpb.UpdateResponse{}), nil
}
