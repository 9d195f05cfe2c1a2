package filesystem

import (
	"context"
	"os"
	"path/filepath"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/filesystempb"
)

// Move renames source to destination (rename(2): an existing destination
// file is replaced, a non-empty destination directory is already_exists).
// Missing parents of destination are created and owned by the request's
// user. A missing source is not_found. Moves across filesystems are
// invalid_argument: rename(2) cannot do them and a copy would not be atomic.
func (s *Service) Move(_ context.Context, req *connect.Request[filesystempb.MoveRequest]) (*connect.Response[filesystempb.MoveResponse], error) {
	u, src, err := s.resolve(req.Header(), req.Msg.GetSource())
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	dst, err := u.Resolve(req.Msg.GetDestination())
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	if _, err := os.Lstat(src); err != nil {
		return nil, errdefs.ToConnect(OSError("move", src, err))
	}
	if err := u.MkdirAll(filepath.Dir(dst)); err != nil {
		if isNotDir(err) {
			return nil, errdefs.ToConnect(errdefs.Invalid("move to %s: a parent is not a directory", dst))
		}
		return nil, errdefs.ToConnect(OSError("make parent dirs of", dst, err))
	}
	if err := os.Rename(src, dst); err != nil {
		return nil, errdefs.ToConnect(OSError("move "+src+" to", dst, err))
	}
	e, err := Entry(dst)
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(&filesystempb.MoveResponse{Entry: e}), nil
}
