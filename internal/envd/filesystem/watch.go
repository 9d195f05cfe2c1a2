package filesystem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"nestbox.dev/internal/envd/keepalive"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/filesystempb"
)

// WatchDir streams the changes under a directory: first a start event, then
// one event per change (a change that is several operations at once gives
// several events), and a keepalive event whenever nothing was sent for the
// keepalive interval. The stream ends when the client goes away, its
// deadline passes, the kernel's event queue overflows (resource_exhausted:
// events were lost) or the service closes (unavailable).
func (s *Service) WatchDir(ctx context.Context, req *connect.Request[filesystempb.WatchDirRequest], stream *connect.ServerStream[filesystempb.WatchDirResponse]) error {
	if err := s.startWatch(); err != nil {
		return errdefs.ToConnect(err)
	}
	defer s.wg.Done()
	m := req.Msg
	d, err := s.openWatch(req.Header(), m.GetPath(), m.GetRecursive(), m.GetIncludeEntry(), m.GetAllowNetworkMounts())
	if err != nil {
		return errdefs.ToConnect(err)
	}
	defer d.close()

	start := &filesystempb.WatchDirResponse{Event: &filesystempb.WatchDirResponse_Start{Start: &filesystempb.WatchDirResponse_StartEvent{}}}
	if err := stream.Send(start); err != nil {
		return err
	}
	interval := keepalive.Interval(req.Header())
	keepalive := time.NewTicker(interval)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return errdefs.ToConnect(ctx.Err())
		case <-s.ctx.Done():
			return errdefs.ToConnect(errdefs.Unavailable("filesystem service is shutting down"))
		case <-keepalive.C:
			ka := &filesystempb.WatchDirResponse{Event: &filesystempb.WatchDirResponse_Keepalive{Keepalive: &filesystempb.WatchDirResponse_KeepAlive{}}}
			if err := stream.Send(ka); err != nil {
				return err
			}
		case ev, ok := <-d.w.Events:
			if !ok {
				return errdefs.ToConnect(fmt.Errorf("watch %s: watcher closed", d.root))
			}
			evs, herr := d.handle(ev)
			for _, e := range evs {
				msg := &filesystempb.WatchDirResponse{Event: &filesystempb.WatchDirResponse_Filesystem{Filesystem: e}}
				if err := stream.Send(msg); err != nil {
					return err
				}
			}
			if herr != nil {
				return errdefs.ToConnect(herr)
			}
			if len(evs) > 0 {
				keepalive.Reset(interval)
			}
		case err, ok := <-d.w.Errors:
			if !ok {
				return errdefs.ToConnect(fmt.Errorf("watch %s: watcher closed", d.root))
			}
			return errdefs.ToConnect(d.fail(err))
		}
	}
}

// dirWatcher follows one directory with inotify and turns fsnotify's events
// into FilesystemEvents. It is not safe for concurrent use: the goroutine
// that reads w.Events owns it.
//
// fsnotify cannot watch recursively on Linux, so a recursive dirWatcher
// watches every directory below root itself, adding directories as they are
// created or moved in and dropping them as they go. A directory's entries
// may appear before its watch is in place ("mkdir -p a/b && touch a/b/f"),
// so a new directory is scanned after its watch is added and CREATE events
// are reported for what the scan finds; an entry created between the two
// can be reported twice. Symlinks to directories are not followed.
type dirWatcher struct {
	root         string
	recursive    bool
	includeEntry bool
	// w's Events channel must stay unbuffered: handle drops a renamed
	// directory's watch before fsnotify reads that directory's own
	// IN_MOVE_SELF, which would otherwise be reported a second time.
	w     *fsnotify.Watcher
	dirs  map[string]struct{} // watched directories, when recursive
	names *namer
	log   *slog.Logger
}

// openWatch checks the request and starts watching; the caller must close
// the returned dirWatcher.
func (s *Service) openWatch(h http.Header, path string, recursive, includeEntry, allowNetwork bool) (*dirWatcher, error) {
	_, root, err := s.resolve(h, path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, OSError("watch dir", root, err)
	}
	if !fi.IsDir() {
		return nil, errdefs.Invalid("path %s not a directory", root)
	}
	if !allowNetwork && onNetworkMount(root) {
		// inotify sees only local changes there, so a watch would
		// silently miss what other machines do (E2B's envd refuses too).
		return nil, errdefs.Invalid("path %s is on a network filesystem; set allow_network_mounts to watch it", root)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, OSError("watch dir", root, err)
	}
	d := &dirWatcher{
		root:         root,
		recursive:    recursive,
		includeEntry: includeEntry,
		w:            w,
		dirs:         map[string]struct{}{},
		names:        newNamer(),
		log:          s.log.With("watch", root),
	}
	if _, err := d.watchTree(root, deviceOf(fi), false); err != nil {
		w.Close()
		return nil, err
	}
	return d, nil
}

func (d *dirWatcher) close() { d.w.Close() }

// watchTree watches dir, which is on device dev, and, when recursive, every
// directory below it. With report set it returns CREATE events for the
// entries it finds below dir. Mounts of kernel pseudo-filesystems (/proc,
// /sys, ...) are not descended into: they hold many thousands of
// directories whose changes inotify does not report anyway.
func (d *dirWatcher) watchTree(dir string, dev uint64, report bool) ([]*filesystempb.FilesystemEvent, error) {
	if err := d.w.Add(dir); err != nil {
		if dir != d.root && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EACCES)) {
			return nil, nil // gone already, or not ours to watch
		}
		if errors.Is(err, syscall.ENOSPC) {
			return nil, fmt.Errorf("watch %s: inotify watch limit reached (fs.inotify.max_user_watches): %w", dir, errdefs.ErrExhausted)
		}
		return nil, OSError("watch dir", dir, err)
	}
	if !d.recursive {
		return nil, nil
	}
	d.dirs[dir] = struct{}{}
	des, err := os.ReadDir(dir)
	if err != nil {
		d.log.Debug("cannot read directory to watch below it", "dir", dir, "err", err)
	}
	var evs []*filesystempb.FilesystemEvent
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		if report && !strings.HasPrefix(de.Name(), UploadTempPrefix) {
			evs = append(evs, d.event(p, filesystempb.EventType_EVENT_TYPE_CREATE))
		}
		if !de.IsDir() { // a symlink is not a directory here
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue // gone already
		}
		subDev := deviceOf(fi)
		if subDev != dev && onPseudoFS(p) {
			continue
		}
		more, err := d.watchTree(p, subDev, report)
		evs = append(evs, more...)
		if err != nil {
			return evs, err
		}
	}
	return evs, nil
}

// forget drops the watches of dir and below after it was removed or renamed.
func (d *dirWatcher) forget(dir string) {
	for p := range d.dirs {
		if p == d.root || (p != dir && !isBelow(p, dir)) {
			continue
		}
		delete(d.dirs, p)
		// The kernel may have dropped the watch already (the directory
		// is gone): nothing to undo then.
		_ = d.w.Remove(p)
	}
}

func isBelow(p, dir string) bool { return strings.HasPrefix(p, dir+"/") }

// eventTypes lists the operations of an fsnotify event in the order E2B's
// envd reports them.
func eventTypes(op fsnotify.Op) []filesystempb.EventType {
	var types []filesystempb.EventType
	if op.Has(fsnotify.Create) {
		types = append(types, filesystempb.EventType_EVENT_TYPE_CREATE)
	}
	if op.Has(fsnotify.Rename) {
		types = append(types, filesystempb.EventType_EVENT_TYPE_RENAME)
	}
	if op.Has(fsnotify.Chmod) {
		types = append(types, filesystempb.EventType_EVENT_TYPE_CHMOD)
	}
	if op.Has(fsnotify.Write) {
		types = append(types, filesystempb.EventType_EVENT_TYPE_WRITE)
	}
	if op.Has(fsnotify.Remove) {
		types = append(types, filesystempb.EventType_EVENT_TYPE_REMOVE)
	}
	return types
}

// UploadTempPrefix starts the names of the temporary files that /files
// writes an upload into before renaming it over its target. Watches do not
// report them: a client sees the upload as its target being created or
// written, as with E2B's envd, which writes in place.
const UploadTempPrefix = ".nestbox-upload-"

// handle turns one fsnotify event into FilesystemEvents and keeps a
// recursive watch's set of directories current. A non-nil error ends the
// watch; the events returned with it are still valid.
func (d *dirWatcher) handle(ev fsnotify.Event) ([]*filesystempb.FilesystemEvent, error) {
	if strings.HasPrefix(filepath.Base(ev.Name), UploadTempPrefix) {
		return nil, nil
	}
	var evs []*filesystempb.FilesystemEvent
	for _, typ := range eventTypes(ev.Op) {
		evs = append(evs, d.event(ev.Name, typ))
	}
	if !d.recursive || ev.Name == d.root {
		return evs, nil
	}
	if ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Remove) {
		d.forget(ev.Name)
	}
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			more, err := d.watchTree(ev.Name, deviceOf(fi), true)
			evs = append(evs, more...)
			if err != nil {
				return evs, err
			}
		}
	}
	return evs, nil
}

// event builds the FilesystemEvent of path, named relative to the root.
func (d *dirWatcher) event(path string, typ filesystempb.EventType) *filesystempb.FilesystemEvent {
	name, err := filepath.Rel(d.root, path)
	if err != nil {
		name = path
	}
	e := &filesystempb.FilesystemEvent{Name: validUTF8(name), Type: typ}
	if d.includeEntry {
		// The entry is gone when the path is (remove, rename away).
		if entry, err := d.names.entry(path); err == nil {
			e.Entry = entry
		}
	}
	return e
}

// fail turns an error from fsnotify's Errors channel into the error that
// ends the watch.
func (d *dirWatcher) fail(err error) error {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		return fmt.Errorf("watch %s: too many changes at once, events were lost: %w", d.root, errdefs.ErrExhausted)
	}
	return fmt.Errorf("watch %s: %w", d.root, err)
}

func deviceOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Dev
	}
	return 0
}

// onPseudoFS reports whether path is on a kernel filesystem that is not
// storage: procfs, sysfs, cgroupfs and the like.
func onPseudoFS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	switch uint32(st.Type) {
	case unix.PROC_SUPER_MAGIC, unix.SYSFS_MAGIC, unix.CGROUP_SUPER_MAGIC, unix.CGROUP2_SUPER_MAGIC,
		unix.DEVPTS_SUPER_MAGIC, unix.DEBUGFS_MAGIC, unix.TRACEFS_MAGIC, unix.SECURITYFS_MAGIC,
		unix.BPF_FS_MAGIC, unix.PSTOREFS_MAGIC, unix.EFIVARFS_MAGIC, unix.BINFMTFS_MAGIC, unix.NSFS_MAGIC:
		return true
	}
	return false
}

// onNetworkMount reports whether path is on NFS, SMB/CIFS or FUSE, by the
// filesystem magic numbers of linux/magic.h.
func onNetworkMount(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	switch uint32(st.Type) {
	case unix.NFS_SUPER_MAGIC, unix.CIFS_SUPER_MAGIC, unix.SMB_SUPER_MAGIC, unix.SMB2_SUPER_MAGIC, unix.FUSE_SUPER_MAGIC:
		return true
	}
	return false
}
