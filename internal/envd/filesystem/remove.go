package filesystem

import (
	"context"
	"os"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/filesystempb"
)

// Remove deletes a file, a symlink (not its target) or a directory with
// everything in it. Removing a path that does not exist succeeds, as with
// E2B's envd (os.RemoveAll): E2B's SDK tests "remove non-existing file"
// expect no error, so callers cannot rely on not_found here.
func (s *Service) Remove(_ context.Context, req *connect.Request[filesystempb.RemoveRequest]) (*connect.Response[filesystempb.RemoveResponse], error) {
	_, path, err := s.resolve(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	if err := os.RemoveAll(path); err != nil {
		return nil, errdefs.ToConnect(OSError("remove", path, err))
	}
	return connect.NewResponse(&filesystempb.RemoveResponse{}), nil
}
