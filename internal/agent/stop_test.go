package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/agentpb/agentpbconnect"
)

func TestOpGate(t *testing.T) {
	var g opGate
	leave, err := g.enter()
	if err != nil {
		t.Fatalf("enter of an open gate: %v", err)
	}
	closed := make(chan int)
	go func() { closed <- g.close(context.Background()) }()
	// close refuses new operations at once, while it waits for the one
	// in flight.
	for {
		g.mu.Lock()
		c := g.closed
		g.mu.Unlock()
		if c {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := g.enter(); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("enter of a closed gate: got %v, want unavailable", err)
	}
	select {
	case left := <-closed:
		t.Fatalf("close returned (%d left) with an operation in flight", left)
	default:
	}
	leave()
	leave() // a second call changes nothing
	if left := <-closed; left != 0 {
		t.Fatalf("close after the last leave: %d left, want 0", left)
	}
	if left := g.close(context.Background()); left != 0 {
		t.Fatalf("second close: %d left, want 0", left)
	}
}

func TestOpGateDeadline(t *testing.T) {
	var g opGate
	if _, err := g.enter(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if left := g.close(ctx); left != 1 {
		t.Fatalf("close with a done context: %d left, want 1", left)
	}
}

// TestGateInterceptor checks which procedures a stopping agent refuses:
// those that change sandboxes or snapshots; reads pass.
func TestGateInterceptor(t *testing.T) {
	var g opGate
	g.close(context.Background())
	ran := 0
	next := func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ran++
		return connect.NewResponse(&agentpb.PingResponse{}), nil
	}
	h := gateInterceptor(&g)(next)
	for _, tc := range []struct {
		procedure string
		refused   bool
	}{
		{agentpbconnect.AgentCreateSandboxProcedure, true},
		{agentpbconnect.AgentDestroySandboxProcedure, true},
		{agentpbconnect.AgentPauseSandboxProcedure, true},
		{agentpbconnect.AgentResumeSandboxProcedure, true},
		{agentpbconnect.AgentForkSandboxProcedure, true},
		{agentpbconnect.AgentCreateSnapshotProcedure, true},
		{agentpbconnect.AgentDeleteSnapshotProcedure, true},
		{agentpbconnect.AgentSetTimeoutProcedure, true},
		{agentpbconnect.AgentGetSandboxProcedure, false},
		{agentpbconnect.AgentListSandboxesProcedure, false},
		{agentpbconnect.AgentPingProcedure, false},
	} {
		ran = 0
		_, err := h(context.Background(), fakeRequest{procedure: tc.procedure})
		if tc.refused {
			if connect.CodeOf(err) != connect.CodeUnavailable || ran != 0 {
				t.Errorf("%s on a stopping agent: got %v (ran %d), want unavailable and not run", tc.procedure, err, ran)
			}
			continue
		}
		if err != nil || ran != 1 {
			t.Errorf("%s on a stopping agent: got %v (ran %d), want it served", tc.procedure, err, ran)
		}
	}
}

// fakeRequest is a connect.AnyRequest naming only its procedure.
type fakeRequest struct {
	connect.AnyRequest
	procedure string
}

func (r fakeRequest) Spec() connect.Spec { return connect.Spec{Procedure: r.procedure} }
