package agent

import (
	"context"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
)

// fork branches a running sandbox (ForkSandbox).
func (a *Agent) fork(ctx context.Context, req *agentpb.ForkSandboxRequest) (*agentpb.ForkSandboxResponse, error) {
	return nil, errdefs.Unimplemented("fork sandbox %s: not implemented yet", req.GetId())
}
