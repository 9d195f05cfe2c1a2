package filesystem

import (
	"context"
	"os"
	"path/filepath"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/filesystempb"
)

// ListDir lists a directory. Depth 0 and 1 give its children; depth N
// descends N levels, and the entries of every level come in one list, each
// directory right before its own entries, names sorted within a directory.
// The listed path may be a symlink to a directory, but symlinks below it are
// entries only: following them could loop or leave the tree. A directory
// below the top that cannot be read (it vanished, or envd may not read it)
// is listed without its children. A path that is not a directory is
// invalid_argument.
func (s *Service) ListDir(ctx context.Context, req *connect.Request[filesystempb.ListDirRequest]) (*connect.Response[filesystempb.ListDirResponse], error) {
	_, path, err := s.resolve(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, errdefs.ToConnect(OSError("list dir", path, err))
	}
	if !fi.IsDir() {
		return nil, errdefs.ToConnect(errdefs.Invalid("path %s is not a directory", path))
	}
	depth := max(req.Msg.GetDepth(), 1)
	des, err := os.ReadDir(path)
	if err != nil {
		return nil, errdefs.ToConnect(OSError("list dir", path, err))
	}
	l := lister{namer: newNamer(), entries: []*filesystempb.EntryInfo{}}
	if err := l.add(ctx, path, des, depth); err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(&filesystempb.ListDirResponse{Entries: l.entries}), nil
}

type lister struct {
	*namer
	entries []*filesystempb.EntryInfo
}

// add appends the entries des of dir and, while depth > 1, those of its
// subdirectories.
func (l *lister) add(ctx context.Context, dir string, des []os.DirEntry, depth uint32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		fi, err := de.Info() // lstat: symlinks stay symlinks
		if err != nil {
			continue // removed since ReadDir
		}
		l.entries = append(l.entries, l.fromInfo(p, fi))
		if depth <= 1 || !fi.IsDir() {
			continue
		}
		sub, err := os.ReadDir(p)
		if err != nil {
			continue
		}
		if err := l.add(ctx, p, sub, depth-1); err != nil {
			return err
		}
	}
	return nil
}
