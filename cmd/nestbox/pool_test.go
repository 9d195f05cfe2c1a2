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
