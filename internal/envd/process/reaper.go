package process

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// reaper collects the exit status of every child of envd with wait4(-1): it
// hands the status of a child started through fork to its waiter and
// silently reaps the rest (orphans re-parented to envd as PID 1 or as a
// subreaper). See the package doc for why it must own wait4.
type reaper struct {
	log       *slog.Logger
	sigs      chan os.Signal
	quit      chan struct{}
	done      chan struct{}
	subreaper bool // we set PR_SET_CHILD_SUBREAPER and must clear it

	// mu is held across fork+register and across each wait4, so a child
	// cannot be reaped before its waiter is registered, and a signal sent
	// under it cannot reach a reaped (and maybe reused) pid.
	mu      sync.Mutex
	waiters map[int]chan<- syscall.WaitStatus
}

func startReaper(log *slog.Logger, subreaper bool) (*reaper, error) {
	r := &reaper{
		log:     log,
		sigs:    make(chan os.Signal, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		waiters: map[int]chan<- syscall.WaitStatus{},
	}
	if subreaper && os.Getpid() != 1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("set child subreaper: %w", err)
		}
		r.subreaper = true
	}
	// Notify before the first sweep: a SIGCHLD that arrives in between is
	// then queued, not lost.
	signal.Notify(r.sigs, syscall.SIGCHLD)
	go r.run()
	return r, nil
}

// run reaps until stop. SIGCHLDs coalesce, so each one triggers a sweep
// that reaps until no exited child is left.
func (r *reaper) run() {
	defer close(r.done)
	for {
		r.sweep()
		select {
		case <-r.quit:
			return
		case <-r.sigs:
		}
	}
}

func (r *reaper) sweep() {
	for {
		pid, err := r.reapOne()
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil || pid <= 0:
			// ECHILD: no children at all; 0: none has exited.
			return
		}
	}
}

// reapOne reaps one exited child, if any, and delivers its status.
func (r *reaper) reapOne() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ws unix.WaitStatus
	pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
	if err != nil || pid <= 0 {
		return pid, err
	}
	status := syscall.WaitStatus(ws)
	if ch, ok := r.waiters[pid]; ok {
		delete(r.waiters, pid)
		ch <- status // buffered: never blocks
	} else {
		r.log.Debug("reaped orphan", "pid", pid, "status", exitStatus(status))
	}
	return pid, nil
}

// fork runs start with the lock held and registers the pid it returns; the
// returned channel receives that child's exit status once.
func (r *reaper) fork(start func() (int, error)) (int, <-chan syscall.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := start()
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiters[pid] = ch
	return pid, ch, nil
}

// signal sends sig to the process group led by pid, and to pid itself if
// it has left that group. It holds the lock, so pid cannot be reaped
// meanwhile: while unreaped, neither the pid nor the group id can be reused.
// Once pid is reaped its group id stays reserved while any member lives,
// so kill(-pid) then reaches only leftovers of the same group. A process
// that is gone is not an error.
func (r *reaper) signal(pid int, sig unix.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := unix.Kill(-pid, sig)
	if errors.Is(err, unix.ESRCH) {
		if _, unreaped := r.waiters[pid]; unreaped {
			err = unix.Kill(pid, sig)
		}
	}
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// stop ends the reaping loop and undoes the subreaper setting.
func (r *reaper) stop() error {
	signal.Stop(r.sigs)
	close(r.quit)
	<-r.done
	if r.subreaper {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0); err != nil {
			return fmt.Errorf("clear child subreaper: %w", err)
		}
	}
	return nil
}
