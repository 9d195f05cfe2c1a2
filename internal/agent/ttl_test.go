package agent

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/agentpb"
)

// TestTimeout checks that the agent destroys a sandbox at the end of its
// timeout, and that SetTimeout moves that end both ways. Bounds are
// generous: timing is measured by benchmarks, not asserted here.
func TestTimeout(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", nil)
	ctx := context.Background()

	short := ta.create(t, &agentpb.SandboxConfig{TimeoutSeconds: 2})
	extended := ta.create(t, &agentpb.SandboxConfig{TimeoutSeconds: 2})
	resp, err := ta.client.SetTimeout(ctx, connect.NewRequest(&agentpb.SetTimeoutRequest{Id: extended.Id, TimeoutSeconds: 120}))
	if err != nil {
		t.Fatal(err)
	}
	if end := resp.Msg.EndAt.AsTime(); end.Before(time.Now().Add(100 * time.Second)) {
		t.Errorf("end after SetTimeout(120s): %s", end)
	}
	ta.waitGone(t, short.Id, 30*time.Second)

	// Well past the original 2 s: the extended one lives on.
	time.Sleep(2 * time.Second)
	if !ta.exists(t, extended.Id) {
		t.Fatal("sandbox destroyed despite its extended timeout")
	}
	mustSh(t, ta.process(extended.Id, "", ""), "true")
	got, err := ta.client.GetSandbox(ctx, connect.NewRequest(&agentpb.GetSandboxRequest{Id: extended.Id}))
	if err != nil || got.Msg.Sandbox.EndAt.AsTime().Sub(resp.Msg.EndAt.AsTime()).Abs() > time.Millisecond {
		t.Errorf("get after SetTimeout: %v, %v; want end %s", got, err, resp.Msg.EndAt.AsTime())
	}
	// The state file has the new end, for a restarted agent.
	rec, err := readState(ta.lookup(extended.Id).dir)
	if err != nil || rec.EndAt.Sub(resp.Msg.EndAt.AsTime()).Abs() > time.Millisecond {
		t.Errorf("state file: end %s, %v; want %s", rec.EndAt, err, resp.Msg.EndAt.AsTime())
	}

	// Shortening works too.
	if _, err := ta.client.SetTimeout(ctx, connect.NewRequest(&agentpb.SetTimeoutRequest{Id: extended.Id, TimeoutSeconds: 1})); err != nil {
		t.Fatal(err)
	}
	ta.waitGone(t, extended.Id, 30*time.Second)
	if _, err := ta.client.SetTimeout(ctx, connect.NewRequest(&agentpb.SetTimeoutRequest{Id: extended.Id, TimeoutSeconds: 60})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("SetTimeout of a timed-out sandbox: got %v, want not found", err)
	}
	assertClean(t, h.dataDir)
}
