package envdclient

import (
	"context"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/proto/processpb"
)

// List returns the processes envd started that are still running, oldest
// first. envd does not report a process's user, so User is empty.
func (c *Client) List(ctx context.Context) ([]nestbox.Process, error) {
	var res *connect.Response[processpb.ListResponse]
	err := call(ctx, "list processes", func(ctx context.Context) (err error) {
		res, err = c.proc.List(ctx, connect.NewRequest(&processpb.ListRequest{}))
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]nestbox.Process, 0, len(res.Msg.GetProcesses()))
	for _, p := range res.Msg.GetProcesses() {
		cfg := p.GetConfig()
		out = append(out, nestbox.Process{
			Pid: p.GetPid(),
			Tag: p.GetTag(),
			Cmd: append([]string{cfg.GetCmd()}, cfg.GetArgs()...),
			Cwd: cfg.GetCwd(),
		})
	}
	return out, nil
}
