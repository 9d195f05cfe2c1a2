package rootfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"nestbox.dev/internal/errdefs"
)

// Linux's FIFREEZE and FITHAW ioctls (_IOWR('X', 119, int) and
// _IOWR('X', 120, int)); golang.org/x/sys does not name them.
const (
	ioctlFreeze = 0xc0045877
	ioctlThaw   = 0xc0045878
)

// Clone copies layer l into dir as a layer of its own over the same
// template (dir/upper.img, to be mounted with Remount at dir/upper and
// dir/rootfs). The sandbox on l must be stopped and l synced (Sync): the
// copy is of the image file. While it copies, l's file system is frozen
// (FIFREEZE), so that nothing writes to it (ext4's lazy inode-table
// initialisation would) and the copy is a consistent file system; it is
// thawed before Clone returns. Only the image's data extents are copied:
// the copy takes the disk that l's data takes, not its size. On error
// nothing is left in dir.
func Clone(l Layer, dir string) (Layer, error) {
	if l.Image == "" || l.Lower == "" || !filepath.IsAbs(dir) {
		return Layer{}, errdefs.Invalid("clone writable layer: incomplete layer %+v or relative dir %q", l, dir)
	}
	out := Layer{
		Root:       filepath.Join(dir, "rootfs"),
		Image:      filepath.Join(dir, "upper.img"),
		UpperMount: filepath.Join(dir, "upper"),
		Lower:      l.Lower,
		SizeBytes:  l.SizeBytes,
	}
	// Only a mounted file system is frozen: FIFREEZE on a plain
	// directory would freeze the file system that holds it.
	if mounted, err := isMountPoint(l.UpperMount); err != nil {
		return Layer{}, fmt.Errorf("clone writable layer: %w", err)
	} else if mounted {
		thaw, err := freeze(l.UpperMount)
		if err != nil {
			return Layer{}, fmt.Errorf("clone writable layer: %w", err)
		}
		defer thaw()
	}
	if _, err := CopySparse(l.Image, out.Image); err != nil {
		return Layer{}, fmt.Errorf("clone writable layer: %w", err)
	}
	return out, nil
}

// freeze freezes the file system mounted at path and returns its thaw.
func freeze(path string) (func(), error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.IoctlSetInt(fd, ioctlFreeze, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("freeze %s: %w", path, err)
	}
	return func() {
		unix.IoctlSetInt(fd, ioctlThaw, 0)
		unix.Close(fd)
	}, nil
}

// thawIfFrozen thaws the file system mounted at path if it is frozen:
// an agent that died during a Clone left its source frozen, and a
// remount or an unmount of that layer must not hang on it. EINVAL (not
// frozen) is no error.
func thawIfFrozen(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetInt(fd, ioctlThaw, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("thaw %s: %w", path, err)
	}
	return nil
}

// CopySparse copies the file src to the new file dst (0600) of the same
// size, writing only src's data extents (found with SEEK_DATA and
// SEEK_HOLE, copied in the kernel with copy_file_range): dst's holes are
// where src's are. It returns the bytes copied. On error dst is removed.
func CopySparse(src, dst string) (_ int64, err error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return 0, err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer func() {
		cerr := out.Close()
		if err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	if err := out.Truncate(fi.Size()); err != nil {
		return 0, err
	}
	size := fi.Size()
	var copied int64
	for off := int64(0); off < size; {
		start, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole after off
		}
		if err != nil {
			return copied, fmt.Errorf("seek data in %s: %w", src, err)
		}
		end, err := unix.Seek(int(in.Fd()), start, unix.SEEK_HOLE)
		if err != nil {
			return copied, fmt.Errorf("seek hole in %s: %w", src, err)
		}
		n, err := copyRange(in, out, start, end-start)
		copied += n
		if err != nil {
			return copied, fmt.Errorf("copy %s: %w", src, err)
		}
		off = end
	}
	return copied, nil
}

// copyRange copies n bytes at off of in to the same offset of out.
func copyRange(in, out *os.File, off, n int64) (int64, error) {
	roff, woff := off, off
	var done int64
	for done < n {
		c, err := unix.CopyFileRange(int(in.Fd()), &roff, int(out.Fd()), &woff, int(min(n-done, 1<<30)), 0)
		if err != nil {
			return done, err
		}
		if c == 0 {
			return done, io.ErrUnexpectedEOF
		}
		done += int64(c)
	}
	return done, nil
}
