package process

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"nestbox.dev/internal/errdefs"
)

// spawn forks sp with its pipes or PTY and returns the process, the channel
// its exit status arrives on, and the outputs to read. The fork happens
// under the reaper's lock (see reaper.fork), and exec.Cmd is not used
// because its Wait would race the reaper.
func (s *Service) spawn(sp *spec) (_ *proc, _ <-chan syscall.WaitStatus, _ []output, err error) {
	// childEnds are the files the child gets; envd closes its copies after
	// the fork either way. parentEnds are envd's, closed on failure only.
	var childEnds, parentEnds []*os.File
	defer func() {
		for _, f := range childEnds {
			f.Close()
		}
		if err != nil {
			for _, f := range parentEnds {
				f.Close()
			}
		}
	}()

	p := &proc{
		tag:         sp.tag,
		config:      sp.config,
		bufSize:     s.cfg.FollowerBuffer,
		slowTimeout: s.cfg.FollowerTimeout,
		followers:   map[*follower]struct{}{},
	}
	attr := &syscall.SysProcAttr{Credential: sp.cred}
	var stdio [3]*os.File
	var outs []output
	if sp.size != nil {
		master, tty, err := openPTY(sp.size)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("pty: %w", err)
		}
		parentEnds, childEnds = append(parentEnds, master), append(childEnds, tty)
		stdio = [3]*os.File{tty, tty, tty}
		p.pty = master
		outs = []output{{kind: ptyKind, f: master}}
		// A session of its own with the PTY as controlling terminal, like a
		// login: job control and ^C work, and the session is the group.
		attr.Setsid, attr.Setctty, attr.Ctty = true, true, 0
	} else {
		if sp.stdin {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, nil, nil, fmt.Errorf("stdin pipe: %w", err)
			}
			parentEnds, childEnds = append(parentEnds, w), append(childEnds, r)
			stdio[0], p.stdin = r, w
		} else {
			null, err := os.Open(os.DevNull)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("open %s: %w", os.DevNull, err)
			}
			childEnds = append(childEnds, null)
			stdio[0] = null
		}
		for i, kind := range []outputKind{stdoutKind, stderrKind} {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, nil, nil, fmt.Errorf("output pipe: %w", err)
			}
			parentEnds, childEnds = append(parentEnds, r), append(childEnds, w)
			stdio[i+1] = w
			outs = append(outs, output{kind: kind, f: r})
		}
		// A group of its own, so that a signal reaches its children too.
		attr.Setpgid = true
	}

	// Fd puts the child's ends in blocking mode, which the child expects;
	// envd's ends stay non-blocking so that reads and writes can be cut.
	files := []uintptr{stdio[0].Fd(), stdio[1].Fd(), stdio[2].Fd()}
	pid, exited, err := s.reaper.fork(func() (int, error) {
		return syscall.ForkExec(sp.path, sp.argv, &syscall.ProcAttr{Dir: sp.dir, Env: sp.env, Files: files, Sys: attr})
	})
	if err != nil {
		return nil, nil, nil, startError(err)
	}
	p.pid = uint32(pid)
	return p, exited, outs, nil
}

// lookPath finds the executable of cmd as exec.LookPath would, but with the
// PATH of the process's own env and relative to its cwd.
func lookPath(cmd, dir, path string) (string, error) {
	if strings.Contains(cmd, "/") {
		p := cmd
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := executable(p); err != nil {
			return "", startError(err)
		}
		return p, nil
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "." // POSIX: an empty PATH entry is the current directory
		}
		p := filepath.Join(d, cmd)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", errdefs.NotFound("executable file not found in $PATH")
}

// executable reports why path cannot be executed, if it is clear up front;
// the rest (a user without permission, a bad binary) surfaces from exec.
func executable(path string) error {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return err
	case st.IsDir():
		return syscall.EISDIR
	case st.Mode()&0o111 == 0:
		return syscall.EACCES
	}
	return nil
}

// startError gives an error of fork/exec its kind: a missing file is
// not_found, one that cannot be executed (no x bit, a directory, a noexec
// mount) is permission_denied, a lack of resources is unavailable, the
// rest (a bad binary) invalid_argument. Start answers not_found and
// permission_denied for nothing else, so that clients can report them as
// a shell does (exit codes 127 and 126). The message does not repeat the
// operation: the caller of Start knows it, and names it once.
func startError(err error) error {
	kind := errdefs.ErrInvalid
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		kind = errdefs.ErrNotFound
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.EPERM):
		kind = errdefs.ErrPermission
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.ENOMEM), errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		kind = errdefs.ErrUnavailable
	}
	return kinded{kind: kind, err: err}
}
