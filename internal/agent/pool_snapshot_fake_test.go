package agent

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/proto/agentpb"
)

// setSnapshotPoolsRPC sets the agent's pools of snapshots.
func (ta *testAgent) setSnapshotPoolsRPC(pools map[string]uint32) error {
	req := &agentpb.SetSnapshotPoolsRequest{}
	for id, n := range pools {
		req.Pools = append(req.Pools, &agentpb.SnapshotPool{SnapshotId: id, Size: n})
	}
	_, err := ta.client.SetSnapshotPools(context.Background(), connect.NewRequest(req))
	return err
}

// pooledOf lists the runtime names of the ready pooled sandboxes restored
// from snapshot sid.
func (ta *testAgent) pooledOf(sid string) []string {
	var out []string
	for _, sb := range ta.pooled() {
		if sb.cfg.SnapshotId == sid {
			out = append(out, sb.rid)
		}
	}
	return out
}

// TestFakeSnapshotPool: a pool of a snapshot keeps sandboxes restored
// from it; a create from the snapshot claims one (no new runtime) with
// its own token and env vars added to the snapshot's, and the pool fills
// up again; a template's pool is not taken by it nor it by a template's
// create; the pools survive a restart; a deleted snapshot takes its pool
// with it; bad requests change nothing.
func TestFakeSnapshotPool(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, withPool(1))
	envs := map[string]string{"GREETING": "hi"}
	src := ta.create(t, &agentpb.SandboxConfig{AccessToken: "source-token", EnvVars: envs, TimeoutSeconds: 600, MemoryMb: 300})
	sid := capsulespec.NewID()
	if _, err := ta.snapshotRPC(src.Id, sid); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		name  string
		pools map[string]uint32
		code  connect.Code
	}{
		{"an unknown snapshot", map[string]uint32{capsulespec.NewID(): 1}, connect.CodeNotFound},
		{"a bad ID", map[string]uint32{"short": 1}, connect.CodeInvalidArgument},
		{"too large", map[string]uint32{sid: MaxPoolSize + 1}, connect.CodeInvalidArgument},
	} {
		if err := ta.setSnapshotPoolsRPC(bad.pools); connect.CodeOf(err) != bad.code {
			t.Errorf("pools with %s: %v, want %v", bad.name, err, bad.code)
		}
	}
	if err := ta.setSnapshotPoolsRPC(map[string]uint32{sid: 2}); err != nil {
		t.Fatalf("set the snapshot's pool: %v", err)
	}
	eventually(t, 10*time.Second, "two pooled sandboxes of the snapshot", func() bool { return len(ta.pooledOf(sid)) == 2 })
	pooled := ta.pooledOf(sid)
	tokens := map[string]string{}
	for _, rid := range pooled {
		tokens[rid] = ta.lookupPooled(t, rid).cfg.AccessToken
	}
	if l := ta.list(); len(l) != 1 || l[0].Id != src.Id {
		t.Fatalf("list shows pooled sandboxes: %v", l)
	}

	sb, err := ta.fromSnapshot(sid, "claim-token", map[string]string{"MINE": "1"})
	if err != nil {
		t.Fatalf("create from the snapshot: %v", err)
	}
	rid := ta.runtimeOf(t, sb.Id)
	if !slices.Contains(pooled, rid) {
		t.Fatalf("the create from the snapshot ran in runtime %s, want one of its pool's %v", rid, pooled)
	}
	ta.wantEnvs(t, sb.Id, "claim-token", map[string]string{"GREETING": "hi", "MINE": "1"}, "in a claimed sandbox of the snapshot")
	for r, tok := range tokens {
		if code, _ := ta.envdGet(t, sb.Id, tok, "/envs"); code != http.StatusUnauthorized {
			t.Errorf("the pool's token of %s opens the claimed sandbox: %d", r, code)
		}
	}
	if code, _ := ta.envdGet(t, sb.Id, "source-token", "/envs"); code != http.StatusUnauthorized {
		t.Errorf("the snapshot's source token opens the claimed sandbox: %d", code)
	}
	if sb.Config.SnapshotId != sid || sb.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
		t.Errorf("claimed sandbox: %v", sb)
	}
	eventually(t, 10*time.Second, "the snapshot's pool refilled", func() bool { return len(ta.pooledOf(sid)) == 2 })

	// A create of the snapshot's template and sizes is never served by
	// the snapshot's pool: it would carry the snapshot's state.
	before := ta.pooledOf(sid)
	plain := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 300, DiskBytes: sb.Config.DiskBytes})
	if r := ta.runtimeOf(t, plain.Id); slices.Contains(before, r) {
		t.Errorf("a create of the template ran in the snapshot's pooled sandbox %s", r)
	}
	if n := len(ta.pooledOf(sid)); n != 2 {
		t.Errorf("a template's create took from the snapshot's pool: %d left", n)
	}

	// The pools are kept across a restart, their sandboxes adopted.
	ta.kill()
	if _, err := os.Stat(filepath.Join(w.dataDir, snapshotPoolsFile)); err != nil {
		t.Fatalf("the pools of snapshots are not kept: %v", err)
	}
	before = slices.Sorted(slices.Values(ta.pooledOf(sid)))
	ta = w.startAgent(t, withPool(1))
	eventually(t, 10*time.Second, "the snapshot's pool after a restart", func() bool { return len(ta.pooledOf(sid)) == 2 })
	if after := slices.Sorted(slices.Values(ta.pooledOf(sid))); !slices.Equal(after, before) {
		t.Errorf("the snapshot's pooled sandboxes after a restart: %v, want the adopted %v", after, before)
	}

	// A delete of the snapshot takes its pool with it.
	ta.deleteSnapshotRPC(t, sid)
	eventually(t, 10*time.Second, "the deleted snapshot's pooled sandboxes removed", func() bool { return len(ta.pooledOf(sid)) == 0 })
	if err := ta.setSnapshotPoolsRPC(map[string]uint32{sid: 1}); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("a pool of the deleted snapshot: %v, want not_found", err)
	}
	for _, id := range []string{src.Id, sb.Id, plain.Id} {
		ta.destroyRPC(t, id)
	}
	ta.stop()
	ta.destroyAll(t)
	w.assertEmpty(t, "after the snapshot's pool")
}
