package lifecycle_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	. "nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/proto/agentpb"
)

// TestReconcileUnderLease checks that a control plane among several (a
// Holder) reconciles only while it holds the reconcile lease: a sandbox
// the store does not know survives while another control plane holds
// it, and is destroyed once the lease is free.
func TestReconcileUnderLease(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Holder = "cp-a"
		c.ReconcileInterval = 20 * time.Millisecond
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	now := time.Now()
	if ok, err := f.store.AcquireLease(ctx, "reconcile", "cp-b", now.Add(time.Hour), now); err != nil || !ok {
		t.Fatalf("cp-b takes the lease: %v, %v", ok, err)
	}
	if _, err := f.agent.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: &agentpb.SandboxConfig{Id: "stray"}})); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { f.svc.Run(ctx); close(done) }()
	time.Sleep(200 * time.Millisecond) // ten intervals
	if !f.agent.Has("stray") {
		t.Fatalf("a control plane without the lease reconciled: the stray sandbox is gone")
	}
	// cp-b's lease ends (it renews with an end in the past).
	if ok, err := f.store.AcquireLease(ctx, "reconcile", "cp-b", time.Now(), time.Now()); err != nil || !ok {
		t.Fatalf("cp-b ends its lease: %v, %v", ok, err)
	}
	for deadline := time.Now().Add(10 * time.Second); f.agent.Has("stray"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stray sandbox was not destroyed after the lease was free")
		}
	}
	cancel()
	<-done
}
