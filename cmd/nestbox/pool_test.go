package main

import (
	"context"
	"testing"

	"nestbox.dev"
)

// TestPoolThroughAPI: with `nestbox up --pool minimal=1`, a create through
// the API with the defaults is served from the warm pool (the control
// plane's defaults are the pool's), the capsule works, and the pool fills
// again; a create of another size is made cold.
func TestPoolThroughAPI(t *testing.T) {
	p := startBenchPlatform(t, "--pool", "minimal=1")
	ctx := context.Background()
	waitPool(t, p, 1)
	h, err := p.client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal", EnvVars: map[string]string{"FROM": "pool"}})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := h.Exec(ctx, []string{"sh", "-c", "echo $FROM"}); err != nil || res.ExitCode != 0 || string(res.Stdout) != "pool\n" {
		t.Fatalf("exec in the pooled capsule: %+v, %v", res, err)
	}
	if hits := agentMetric(t, p, `nestbox_agent_pool_claims_total{result="hit"}`); hits != 1 {
		t.Fatalf("claims that hit the pool: %v, want 1 (%s)", hits, poolClaims(t, p))
	}
	waitPool(t, p, 1)
	big, err := p.client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal", MemoryMB: 384})
	if err != nil {
		t.Fatal(err)
	}
	if hits := agentMetric(t, p, `nestbox_agent_pool_claims_total{result="hit"}`); hits != 1 {
		t.Errorf("a 384 MiB create hit the pool of default-sized sandboxes (%s)", poolClaims(t, p))
	}
	for _, c := range []*nestbox.Handle{h, big} {
		if _, err := c.Kill(ctx); err != nil {
			t.Error(err)
		}
	}
}

// TestTemplatePoolThroughAPI: a team's template made from a snapshot gets
// a warm pool through the API (PUT /v1/templates/{name}/pool); the host
// restores a sandbox from the snapshot ahead, and a create of the
// template claims it, with the snapshot's files and the create's env
// vars. A pool of 0 empties it.
func TestTemplatePoolThroughAPI(t *testing.T) {
	p := startBenchPlatform(t)
	ctx := context.Background()
	src, err := p.client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal"})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := src.Exec(ctx, []string{"sh", "-c", "echo from-snapshot > /tmp/state"}); err != nil || res.ExitCode != 0 {
		t.Fatalf("write in the source: %+v, %v", res, err)
	}
	sn, err := src.Snapshot(ctx, nestbox.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.client.CreateTemplate(ctx, "pooled-env", sn.ID); err != nil {
		t.Fatal(err)
	}
	tpl, err := p.client.SetTemplatePool(ctx, "pooled-env", 1)
	if err != nil || tpl.PoolSize != 1 {
		t.Fatalf("set the pool: %+v, %v", tpl, err)
	}
	waitPool(t, p, 1)
	h, err := p.client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "pooled-env", EnvVars: map[string]string{"FROM": "create"}})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := h.Exec(ctx, []string{"sh", "-c", "cat /tmp/state; echo $FROM"}); err != nil || res.ExitCode != 0 || string(res.Stdout) != "from-snapshot\ncreate\n" {
		t.Fatalf("exec in the capsule of the pooled template: %+v, %v", res, err)
	}
	if hits := agentMetric(t, p, `nestbox_agent_pool_claims_total{result="hit"}`); hits != 1 {
		t.Fatalf("claims that hit the pool: %v, want 1 (%s)", hits, poolClaims(t, p))
	}
	waitPool(t, p, 1) // refilled
	if _, err := p.client.SetTemplatePool(ctx, "pooled-env", 0); err != nil {
		t.Fatal(err)
	}
	waitPool(t, p, 0)
	if _, err := h.Kill(ctx); err != nil {
		t.Error(err)
	}
	if err := p.client.DeleteTemplate(ctx, "pooled-env"); err != nil {
		t.Error(err)
	}
	if err := p.client.DeleteSnapshot(ctx, sn.ID); err != nil {
		t.Error(err)
	}
}
