package process

import (
	"context"
	"nestbox.dev/internal/envd/keepalive"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
)

// Connect follows a running process, selected by pid or tag: the start
// event, then live output (earlier output is not replayed) and the end.
// Any number of clients may follow one process.
func (s *Service) Connect(ctx context.Context, req *connect.Request[processpb.ConnectRequest], stream *connect.ServerStream[processpb.ConnectResponse]) error {
	p, err := s.find(req.Msg.GetProcess())
	if err != nil {
		return errdefs.ToConnect(err)
	}
	return s.follow(ctx, p, p.subscribe(), keepalive.Interval(req.Header()), func(ev *processpb.ProcessEvent) error {
		return stream.Send(&processpb.ConnectResponse{Event: ev})
	})
}
