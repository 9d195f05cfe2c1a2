package filesystem

import (
	"context"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/filesystempb"
)

// Stat describes one entry without following a final symlink.
func (s *Service) Stat(_ context.Context, req *connect.Request[filesystempb.StatRequest]) (*connect.Response[filesystempb.StatResponse], error) {
	_, path, err := s.resolve(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	e, err := Entry(path)
	if err != nil {
		return nil, errdefs.ToConnect(err)
	}
	return connect.NewResponse(&filesystempb.StatResponse{Entry: e}), nil
}
