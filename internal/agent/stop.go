package agent

import (
	"context"
	"sync"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb/agentpbconnect"
)

// changes reports whether procedure changes sandboxes or snapshots on
// the host. A graceful stop waits for those in flight (a create's undo, a
// destroy's teardown, a checkpoint) and refuses new ones, so that a
// stopped agent never leaves a sandbox half made or half removed; reads
// are served until the server closes.
func changes(procedure string) bool {
	switch procedure {
	case agentpbconnect.AgentCreateSandboxProcedure,
		agentpbconnect.AgentDestroySandboxProcedure,
		agentpbconnect.AgentPauseSandboxProcedure,
		agentpbconnect.AgentResumeSandboxProcedure,
		agentpbconnect.AgentForkSandboxProcedure,
		agentpbconnect.AgentCreateSnapshotProcedure,
		agentpbconnect.AgentDeleteSnapshotProcedure,
		agentpbconnect.AgentSetTimeoutProcedure:
		return true
	}
	return false
}

// opGate counts the operations in flight and, once closed, admits no
// more. The zero value is open. It is safe for concurrent use.
type opGate struct {
	mu     sync.Mutex
	n      int
	closed bool
	// idle is made by close and closed when n reaches zero after it.
	idle chan struct{}
}

// enter admits one operation; the caller calls leave when it ends. A
// closed gate refuses with errdefs.Unavailable.
func (g *opGate) enter() (leave func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, errdefs.Unavailable("the agent is stopping")
	}
	g.n++
	return sync.OnceFunc(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.n--
		if g.closed && g.n == 0 {
			close(g.idle)
		}
	}), nil
}

// close refuses new operations and waits until those in flight have
// ended or ctx is done; it reports how many were still running then.
// Calling it again waits again.
func (g *opGate) close(ctx context.Context) (left int) {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		g.idle = make(chan struct{})
		if g.n == 0 {
			close(g.idle)
		}
	}
	idle := g.idle
	g.mu.Unlock()
	select {
	case <-idle:
		return 0
	case <-ctx.Done():
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.n
	}
}

// gateInterceptor passes the changing procedures through g.
func gateInterceptor(g *opGate) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if !changes(req.Spec().Procedure) {
				return next(ctx, req)
			}
			leave, err := g.enter()
			if err != nil {
				return nil, errdefs.ToConnect(err)
			}
			defer leave()
			return next(ctx, req)
		}
	}
}
