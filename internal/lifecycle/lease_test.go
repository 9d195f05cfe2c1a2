package lifecycle_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	. "nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/lifecycle/fakehost"
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

// TestStuckAcrossReplicas checks the touch of work in flight: a pause
// driven by replica A is left alone by replica B's reconcile while A
// touches it, however long it takes, and resolved by B once A stops
// touching (A is gone) for three intervals.
func TestStuckAcrossReplicas(t *testing.T) {
	const touch = 30 * time.Millisecond
	f := newFixture(t, func(c *Config) { c.Holder, c.TouchInterval, c.ReconcileInterval = "cp-a", touch, time.Hour })
	b, err := New(Config{Store: f.store, Events: f.events, Hosts: fakehost.Hosts{Host: Host{ID: "h1", Agent: f.agent}},
		Holder: "cp-b", TouchInterval: touch, ReconcileInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(10 * time.Second) })
	ctx := context.Background()
	c := f.running(t, nestbox.CreateCapsuleRequest{})

	actx, stopA := context.WithCancel(ctx)
	aDone := make(chan struct{})
	go func() { f.svc.Run(actx); close(aDone) }()
	release := f.agent.HoldPauses()
	defer release()
	if _, err := f.svc.Pause(ctx, team, c.ID, PauseOptions{Memory: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * touch)
	if err := b.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.store.GetCapsule(ctx, c.ID); got.Status != nestbox.StatusPausing {
		t.Fatalf("replica B resolved a pause replica A drives and touches: %s", got.Status)
	}

	stopA() // A stops touching: to B, A is gone
	<-aDone
	time.Sleep(10 * touch)
	if err := b.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := f.store.GetCapsule(ctx, c.ID)
	if got.Status != nestbox.StatusRunning {
		t.Fatalf("after replica A stopped touching, the pause it drove is %s; want running (the host still runs it)", got.Status)
	}
}
