package filesystem

import (
	"errors"
	"fmt"
	"syscall"

	"nestbox.dev/internal/errdefs"
)

// OSError describes a failed filesystem operation on path and gives it the
// error kind a client can act on: a missing path is ErrNotFound, an existing
// one ErrAlreadyExists, EACCES/EPERM/EROFS ErrPermission, a full disk
// ErrNoSpace, and so on. The cause stays in the chain, so errors.Is(err,
// fs.ErrNotExist) still holds. The message names op and path once:
// "stat /x: no such file or directory". Shared with the /files handler.
func OSError(op, path string, err error) error {
	if err == nil {
		return nil
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("%s %s: %w", op, path, err)
	}
	kind := errnoKind(errno)
	if kind == nil {
		return fmt.Errorf("%s %s: %w", op, path, err)
	}
	// The errno alone is the message: the os wrappers would repeat the path.
	return fmt.Errorf("%s %s: %w", op, path, &kindError{kind: kind, msg: errno.Error(), cause: err})
}

func errnoKind(errno syscall.Errno) error {
	switch errno {
	case syscall.ENOENT, syscall.ENOTDIR:
		return errdefs.ErrNotFound
	case syscall.EEXIST, syscall.ENOTEMPTY:
		return errdefs.ErrAlreadyExists
	case syscall.EACCES, syscall.EPERM, syscall.EROFS:
		return errdefs.ErrPermission
	case syscall.ENOSPC, syscall.EDQUOT:
		return errdefs.ErrNoSpace
	case syscall.EFBIG:
		return errdefs.ErrTooLarge
	case syscall.EMFILE, syscall.ENFILE:
		return errdefs.ErrExhausted
	case syscall.EINVAL, syscall.ENAMETOOLONG, syscall.ELOOP, syscall.EISDIR, syscall.EXDEV:
		return errdefs.ErrInvalid
	}
	return nil
}

// kindError carries an error kind next to its cause; errors.Is matches both.
type kindError struct {
	kind  error
	msg   string
	cause error
}

func (e *kindError) Error() string   { return e.msg }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.cause} }

// isNotDir reports whether err says a path component is not a directory.
func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }
