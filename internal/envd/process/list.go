package process

import (
	"context"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/processpb"
)

// List returns the processes envd started that are still running, oldest
// first, with the config they were started with (cwd resolved).
func (s *Service) List(ctx context.Context, req *connect.Request[processpb.ListRequest]) (*connect.Response[processpb.ListResponse], error) {
	res := &processpb.ListResponse{}
	for _, p := range s.procs.all() {
		if !p.running() {
			continue // exited; its output is draining
		}
		res.Processes = append(res.Processes, &processpb.ProcessInfo{Config: p.config, Pid: p.pid, Tag: p.tag})
	}
	return connect.NewResponse(res), nil
}
