package filesystem

import (
	"context"
	"os"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/filesystempb"
)

// MakeDir creates a directory and its missing parents (mkdir -p), each owned
// by the request's user. An existing directory is already_exists, which
// E2B's SDK turns into false; an existing non-directory is invalid_argument.
func (s *Service) MakeDir(_ context.Context, req *connect.Request[filesystempb.MakeDirRequest]) (*connect.Response[filesystempb.MakeDirResponse], error) {
	u, path, err := s.resolve(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return nil, errdefs.ToConnect(errdefs.AlreadyExists("directory %s already exists", path))
		}
		return nil, errdefs.ToConnect(errdefs.Invalid("path %s already exists and is not a directory", path))
	}
	if err := u.MkdirAll(path); err != nil {
		if isNotDir(err) {
			// A parent is a file: mkdir -p says "Not a directory".
			return nil, errdefs.ToConnect(errdefs.Invalid("make dir %s: a parent is not a directory", path))
		}
		return nil, errdefs.ToConnect(OSError("make dir", path, err))
	}
	e, err := Entry(path)
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(&filesystempb.MakeDirResponse{Entry: e}), nil
}
