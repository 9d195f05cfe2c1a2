// Package rootfs gives each sandbox a copy-on-write root filesystem over an
// immutable template: a host overlayfs whose lower layer is the template and
// whose upper layer lives on a sparse ext4 image mounted through a loop
// device. The image's size is the sandbox's hard disk limit, so a sandbox
// that fills its disk gets ENOSPC and nobody else notices. The limit is
// never smaller than the template itself: a sandbox that rewrites every file
// of its template must still fit.
//
// Imported by the host agent.
package rootfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"nestbox.dev/internal/errdefs"
)

// MinSize is the smallest writable layer; ext4 needs some room for itself.
const MinSize = 64 << 20

// Layer is one sandbox's mounted root filesystem. It is plain data so the
// agent can keep it in the sandbox's state file.
type Layer struct {
	// Root is the merged overlay: the sandbox's "/".
	Root string `json:"root"`
	// Image is the sparse ext4 file holding the upper layer.
	Image string `json:"image"`
	// UpperMount is where the image is mounted on the host.
	UpperMount string `json:"upper_mount"`
	// Lower is the template directory.
	Lower string `json:"lower"`
	// SizeBytes is the writable layer's size limit.
	SizeBytes int64 `json:"size_bytes"`
}

// Size returns the writable-layer size for a request: at least the
// template's size plus a margin for ext4's own metadata, at least MinSize.
func Size(requested, templateBytes int64) int64 {
	floor := templateBytes + templateBytes/10 + 16<<20
	size := max(requested, floor, MinSize)
	return (size + 4095) &^ 4095
}

// The steps of Mount, in order; a test hook runs after each.
const (
	stepImage   = "image"   // dir/upper.img exists, sized
	stepFormat  = "format"  // it holds an ext4 file system
	stepDirs    = "dirs"    // dir/upper and dir/rootfs exist
	stepLoop    = "loop"    // the image is mounted on a loop device
	stepUpper   = "upper"   // upper/ and work/ exist in it
	stepOverlay = "overlay" // the overlay is mounted at dir/rootfs
)

var mountSteps = []string{stepImage, stepFormat, stepDirs, stepLoop, stepUpper, stepOverlay}

// Mount creates dir/upper.img of size bytes, mounts it and an overlay over
// lower at dir/rootfs. On error nothing it made is left behind: no file, no
// mount, no loop device.
func Mount(ctx context.Context, lower, dir string, size int64) (Layer, error) {
	return mount(ctx, lower, dir, size, nil)
}

// mount is Mount with a hook run after each step (nil: none); an error of
// the hook fails the mount there, as a failure of the next step would.
func mount(ctx context.Context, lower, dir string, size int64, after func(step string) error) (l Layer, err error) {
	if !filepath.IsAbs(lower) || !filepath.IsAbs(dir) {
		return Layer{}, errdefs.Invalid("rootfs paths must be absolute")
	}
	if size < MinSize {
		return Layer{}, errdefs.Invalid("writable layer of %d bytes is below the minimum of %d", size, MinSize)
	}
	if fi, err := os.Stat(lower); err != nil || !fi.IsDir() {
		return Layer{}, errdefs.NotFound("template directory %s not found", lower)
	}
	l = Layer{
		Root:       filepath.Join(dir, "rootfs"),
		Image:      filepath.Join(dir, "upper.img"),
		UpperMount: filepath.Join(dir, "upper"),
		Lower:      lower,
		SizeBytes:  size,
	}
	var undo []func() error
	defer func() {
		if err != nil {
			var errs []error
			for i := len(undo) - 1; i >= 0; i-- {
				if uerr := undo[i](); uerr != nil {
					errs = append(errs, uerr)
				}
			}
			if len(errs) > 0 {
				err = fmt.Errorf("%w (and undoing it: %w)", err, errors.Join(errs...))
			}
		}
	}()
	step := func(name string) error {
		if after == nil {
			return nil
		}
		return after(name)
	}

	f, err := os.OpenFile(l.Image, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return l, fmt.Errorf("create writable layer: %w", err)
	}
	undo = append(undo, func() error { return removeIfExists(l.Image) })
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return l, fmt.Errorf("size writable layer: %w", err)
	}
	if err := step(stepImage); err != nil {
		return l, err
	}
	// No journal: the layer lives and dies with one sandbox. Lazy init
	// keeps mkfs at tens of milliseconds for any size.
	if err := run(ctx, "mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", l.Image); err != nil {
		return l, fmt.Errorf("format writable layer: %w", err)
	}
	if err := step(stepFormat); err != nil {
		return l, err
	}
	undo = append(undo, func() error { return errors.Join(removeIfExists(l.UpperMount), removeIfExists(l.Root)) })
	for _, d := range []string{l.UpperMount, l.Root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return l, err
		}
	}
	if err := step(stepDirs); err != nil {
		return l, err
	}
	// mount(8) sets up the loop device with autoclear: unmounting frees it.
	// It runs to its end whatever ctx does: killed between its loop setup
	// and the mount's return, it would leave a mount this function does
	// not know of (a create cancelled by its caller did). The undo is
	// pushed first for the same reason; unmount of what is not mounted is
	// a no-op.
	undo = append(undo, func() error { return unmount(l.UpperMount) })
	if err := run(context.WithoutCancel(ctx), "mount", "-o", "loop,noatime", l.Image, l.UpperMount); err != nil {
		return l, fmt.Errorf("mount writable layer: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return l, fmt.Errorf("mount writable layer: %w", err)
	}
	if err := step(stepLoop); err != nil {
		return l, err
	}
	for _, d := range []string{"upper", "work"} {
		if err := os.Mkdir(filepath.Join(l.UpperMount, d), 0o755); err != nil {
			return l, err
		}
	}
	if err := step(stepUpper); err != nil {
		return l, err
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s",
		lower, filepath.Join(l.UpperMount, "upper"), filepath.Join(l.UpperMount, "work"))
	if err := unix.Mount("overlay", l.Root, "overlay", 0, opts); err != nil {
		return l, fmt.Errorf("mount overlay: %w", err)
	}
	undo = append(undo, func() error { return unmount(l.Root) })
	if err := step(stepOverlay); err != nil {
		return l, err
	}
	return l, nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Unmount unmounts the overlay and the writable layer and removes the
// image. It is idempotent.
func Unmount(ctx context.Context, l Layer) error {
	var errs []error
	if l.UpperMount != "" {
		if mounted, err := isMountPoint(l.UpperMount); err == nil && mounted {
			if err := thawIfFrozen(l.UpperMount); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, m := range []string{l.Root, l.UpperMount} {
		if m == "" {
			continue
		}
		if err := unmount(m); err != nil {
			errs = append(errs, err)
		}
		if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if l.Image != "" {
		if err := os.Remove(l.Image); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unmountAttempts bounds unmount: mounts stacked on one path (runsc may
// mount over a path more than once) take one attempt each, and a mount
// that will not go must not spin the caller forever.
const unmountAttempts = 32

// unmount unmounts path, and every mount stacked on it, if it is a mount
// point. A busy mount is detached lazily: the sandbox is gone, whatever
// still holds it lets go soon. After unmountAttempts it gives up with an
// error saying what is still mounted.
func unmount(path string) error {
	for range unmountAttempts {
		mounted, err := isMountPoint(path)
		if err != nil || !mounted {
			return err
		}
		if err := unix.Unmount(path, 0); err != nil {
			if errors.Is(err, unix.EBUSY) {
				err = unix.Unmount(path, unix.MNT_DETACH)
			}
			if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("unmount %s: %w", path, err)
			}
		}
	}
	return fmt.Errorf("unmount %s: still mounted after %d attempts (see /proc/self/mountinfo): %w", path, unmountAttempts, errdefs.ErrUnavailable)
}

// isMountPoint reports whether path is in /proc/self/mountinfo.
func isMountPoint(path string) (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescape(f[4]) == path {
			return true, nil
		}
	}
	return false, nil
}

// unescape undoes mountinfo's octal escapes of space, tab, newline and \.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Remount mounts an existing layer again where it was (after a reboot of
// the host, whose mounts went with it), keeping what it holds. What is
// mounted already is left alone, so it is idempotent. On error it unmounts
// what it mounted.
func Remount(ctx context.Context, l Layer) (err error) {
	if l.Root == "" || l.UpperMount == "" || l.Image == "" || l.Lower == "" {
		return errdefs.Invalid("remount: incomplete layer %+v", l)
	}
	if _, err := os.Stat(l.Image); err != nil {
		return fmt.Errorf("remount writable layer: %w", err)
	}
	for _, d := range []string{l.UpperMount, l.Root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("remount writable layer: %w", err)
		}
	}
	upperMounted, err := isMountPoint(l.UpperMount)
	if err != nil {
		return err
	}
	if upperMounted {
		if err := thawIfFrozen(l.UpperMount); err != nil {
			return fmt.Errorf("remount writable layer: %w", err)
		}
	}
	if !upperMounted {
		// As in mount: mount(8) is never killed half-way, and a failure
		// unmounts whatever it did.
		defer func() {
			if err != nil {
				unmount(l.UpperMount)
			}
		}()
		if err := run(context.WithoutCancel(ctx), "mount", "-o", "loop,noatime", l.Image, l.UpperMount); err != nil {
			return fmt.Errorf("remount writable layer: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("remount writable layer: %w", err)
		}
	}
	rootMounted, err := isMountPoint(l.Root)
	if err != nil || rootMounted {
		return err
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s",
		l.Lower, filepath.Join(l.UpperMount, "upper"), filepath.Join(l.UpperMount, "work"))
	if err := unix.Mount("overlay", l.Root, "overlay", 0, opts); err != nil {
		return fmt.Errorf("remount overlay: %w", err)
	}
	return nil
}

// Sync flushes what the sandbox wrote to its layer down to the image file
// on the host's disk: the overlay's and the ext4's file systems (syncfs)
// and then the image itself (fsync), so that a host that loses power after
// a pause keeps every byte.
func Sync(l Layer) error {
	for _, p := range []string{l.Root, l.UpperMount} {
		if err := syncfs(p); err != nil {
			return fmt.Errorf("sync writable layer: %w", err)
		}
	}
	f, err := os.OpenFile(l.Image, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sync writable layer: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync writable layer: %w", err)
	}
	return nil
}

func syncfs(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}
