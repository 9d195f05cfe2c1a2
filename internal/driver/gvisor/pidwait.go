package gvisor

import (
	"context"
	"errors"

	"golang.org/x/sys/unix"
)

// processExit waits for a process that is not our child to exit, through
// a pidfd (readable once the process has exited). The zero value, for a
// process that could not be opened, waits for nothing: the caller's
// polling of runsc then does all the waiting.
type processExit struct{ fd int }

// pidExit opens a pidfd of pid; a pid of 0 or one that cannot be opened
// (gone already, or an old kernel) gives the zero processExit.
func pidExit(pid int) processExit {
	if pid <= 0 {
		return processExit{fd: -1}
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return processExit{fd: -1}
	}
	return processExit{fd: fd}
}

// wait blocks until the process has exited or ctx is done.
func (p processExit) wait(ctx context.Context) error {
	if p.fd < 0 {
		return nil
	}
	fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Wake every 100 ms to notice ctx; the exit itself wakes at once.
		n, err := unix.Poll(fds, 100)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil // leave the waiting to runsc's state
		}
		if n > 0 {
			return nil
		}
	}
}

// valid reports whether p watches a process (wait waits for something).
func (p processExit) valid() bool { return p.fd >= 0 }

func (p processExit) close() {
	if p.fd >= 0 {
		unix.Close(p.fd)
	}
}
