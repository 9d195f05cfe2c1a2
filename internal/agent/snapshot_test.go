package agent

import (
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/processpb/processpbconnect"
)

// assertNoSnapshots fails the test unless the data dir keeps no snapshot
// and no temporary of one.
func assertNoSnapshots(t testing.TB, dataDir, when string) {
	t.Helper()
	if names := snapshotEntries(dataDir); len(names) > 0 {
		t.Errorf("%s: snapshots left: %v", when, names)
	}
}

// TestSnapshot snapshots a sandbox that runs a counter and a web server
// and holds files and an in-memory pattern, and starts three sandboxes
// from the snapshot at once: each has the pattern, the files and the
// processes (same PIDs, the counter going on from the snapshot's value),
// answers on its port, takes its own token and refuses the source's; the
// source runs on. Files written afterwards in each are seen by none of
// the others. The snapshot outlives everything until deleted, and
// nothing is left on the host.
func TestSnapshot(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", nil)
	src := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 128, TimeoutSeconds: 600, AccessToken: "source-token"})
	pc := ta.process(src.Id, "source-token", "root")
	w := newForkWorld(t, pc)
	before := pids(t, pc)
	if len(strings.Fields(before)) != 2 {
		t.Fatalf("the counter and the web server: pids %q", before)
	}
	sid := capsulespec.NewID()
	resp, err := ta.snapshotRPC(src.Id, sid)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if s := resp.Snapshot; s.Id != sid || s.SandboxId != src.Id || s.MemoryMb != 128 || s.SizeBytes < memPatternMiB<<20 || s.EnvdVersion == "" {
		t.Errorf("snapshot %v", s)
	}
	if resp.Sandbox.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
		t.Fatalf("the source after the snapshot: %v", resp.Sandbox)
	}
	// What the snapshot holds; the source's check writes a file more.
	snapW := *w
	snapW.files = maps.Clone(w.files)
	w.check(t, pc, 1)

	made := make([]*agentpb.Sandbox, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range made {
		wg.Go(func() { made[i], errs[i] = ta.fromSnapshot(sid, fmt.Sprintf("token-%d", i), nil) })
	}
	wg.Wait()
	ids := []string{src.Id}
	clients := map[string]processpbconnect.ProcessClient{src.Id: pc}
	for i, sb := range made {
		if errs[i] != nil {
			t.Fatalf("sandbox %d from the snapshot: %v", i, errs[i])
		}
		if sb.Config.SnapshotId != sid || sb.Address == src.Address {
			t.Errorf("sandbox %d from the snapshot: %v", i, sb)
		}
		ids = append(ids, sb.Id)
		clients[sb.Id] = ta.assertRestoredCopy(t, sb.Id, fmt.Sprintf("token-%d", i), &snapW, before, 100+i)
	}
	w.check(t, pc, 200)
	if got := pids(t, pc); got != before {
		t.Errorf("the source's pids after the snapshot: %q, before %q", got, before)
	}
	ta.assertOwnWrites(t, ids, clients)
	for _, id := range ids {
		ta.destroyRPC(t, id)
	}
	assertClean(t, h.dataDir)
	if got := ta.listSnapshotsRPC(t); got[sid] == nil {
		t.Fatalf("the snapshot is gone with its sandboxes: %v", got)
	}
	ta.deleteSnapshotRPC(t, sid)
	assertNoSnapshots(t, h.dataDir, "after the delete")
}

// TestSnapshotDeleteAndDamage deletes a snapshot while a sandbox is
// restored from it (held after its copy: the delete goes through, the
// restore ends running with the snapshot's memory and files), then
// damages a snapshot's memory image: the create is data_loss and leaves
// nothing.
func TestSnapshotDeleteAndDamage(t *testing.T) {
	h := newTestHost(t)
	var armed atomic.Bool
	held, release := make(chan struct{}), make(chan struct{})
	ta := h.startAgent(t, "", func(c *Config) {
		c.failAt = func(step string) error {
			if step == stepForkNetwork && armed.CompareAndSwap(true, false) {
				close(held)
				<-release
			}
			return nil
		}
	})
	src := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 128, TimeoutSeconds: 600, AccessToken: "source-token"})
	pc := ta.process(src.Id, "source-token", "root")
	w := newPauseWorld(t, pc)
	sid := capsulespec.NewID()
	if _, err := ta.snapshotRPC(src.Id, sid); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	restored := ta.fromSnapshotAsync(sid, "new")
	<-held
	ta.deleteSnapshotRPC(t, sid)
	assertNoSnapshots(t, h.dataDir, "after a delete during a restore")
	close(release)
	r := <-restored
	if r.err != nil {
		t.Fatalf("the restore during the delete: %v", r.err)
	}
	rw := *w
	rw.files = maps.Clone(w.files)
	rw.check(t, ta.process(r.sb.Id, "new", "root"), 1)
	ta.destroyRPC(t, r.sb.Id)

	bad := capsulespec.NewID()
	if _, err := ta.snapshotRPC(src.Id, bad); err != nil {
		t.Fatal(err)
	}
	if err := flipLargest(filepath.Join(h.dataDir, snapshotsDirName, bad, imagesDirName)); err != nil {
		t.Fatal(err)
	}
	id := capsulespec.NewID()
	_, err := ta.tryCreate(&agentpb.SandboxConfig{Id: id, SnapshotId: bad, AccessToken: "x"})
	if connect.CodeOf(err) != connect.CodeDataLoss {
		t.Errorf("create from a damaged snapshot: %v, want data_loss", err)
	}
	assertForkGone(t, h.dataDir, id, "after a create from a damaged snapshot")
	w.check(t, pc, 2)
	ta.deleteSnapshotRPC(t, bad)
	ta.destroyRPC(t, src.Id)
	assertClean(t, h.dataDir)
	assertNoSnapshots(t, h.dataDir, "at the end")
}

// flipLargest flips one byte in the middle of the largest file of dir, in
// place.
func flipLargest(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var name string
	var size int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Size() > size {
			name, size = e.Name(), fi.Size()
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, size/2); err != nil {
		return err
	}
	b[0] ^= 0x01
	_, err = f.WriteAt(b, size/2)
	return err
}

// TestSnapshotFailureInjection fails a CreateSnapshot after each of its
// steps (no snapshot and no temporary left; the source runs on with its
// processes, files and memory), then a create from a good snapshot after
// each of its steps (nothing of that sandbox left on the host).
func TestSnapshotFailureInjection(t *testing.T) {
	h := newTestHost(t)
	var at atomic.Value
	ta := h.startAgent(t, "", func(c *Config) { c.failAt = failHook(&at) })
	src := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 128, TimeoutSeconds: 600, AccessToken: "source-token"})
	pc := ta.process(src.Id, "source-token", "root")
	w := newPauseWorld(t, pc)
	for i, step := range snapshotSteps {
		at.Store(step)
		_, err := ta.snapshotRPC(src.Id, capsulespec.NewID())
		at.Store("")
		if !injected(err) {
			t.Fatalf("snapshot failing at %s: %v, want the injected error", step, err)
		}
		if got := ta.getRPC(t, src.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
			t.Fatalf("source after a snapshot failing at %s: %v", step, got)
		}
		w.check(t, pc, i)
		assertNoSnapshots(t, h.dataDir, "after a snapshot failing at "+step)
	}
	sid := capsulespec.NewID()
	if _, err := ta.snapshotRPC(src.Id, sid); err != nil {
		t.Fatal(err)
	}
	for _, step := range snapshotRestoreSteps {
		at.Store(step)
		id := capsulespec.NewID()
		_, err := ta.tryCreate(&agentpb.SandboxConfig{Id: id, SnapshotId: sid, AccessToken: "new"})
		at.Store("")
		if !injected(err) {
			t.Fatalf("create from a snapshot failing at %s: %v, want the injected error", step, err)
		}
		assertForkGone(t, h.dataDir, id, "after a create from a snapshot failing at "+step)
	}
	sb, err := ta.fromSnapshot(sid, "new", nil)
	if err != nil {
		t.Fatalf("create from the snapshot after the failures: %v", err)
	}
	sw := *w
	sw.files = maps.Clone(w.files)
	sw.check(t, ta.process(sb.Id, "new", "root"), 50)
	ta.destroyRPC(t, sb.Id)
	ta.destroyRPC(t, src.Id)
	ta.deleteSnapshotRPC(t, sid)
	assertClean(t, h.dataDir)
	assertNoSnapshots(t, h.dataDir, "at the end")
}

// TestAgentKilledDuringSnapshot kills the agent with SIGKILL (its process
// group) after every step of a CreateSnapshot. A new agent on the same
// data dir finds the source running, or paused on disk (a kill after its
// checkpoint, before its restore: resumed with its files, memory and
// processes), or in error with its layer kept (a kill between the
// checkpoint and its manifest, as for a pause); and either no snapshot
// at all, temporaries included, or (a kill after the rename) the whole
// snapshot, which starts a sandbox with the source's state.
func TestAgentKilledDuringSnapshot(t *testing.T) {
	h := newTestHost(t)
	outcomes := map[string][]string{}
	for _, step := range snapshotSteps {
		t.Run(step, func(t *testing.T) {
			c, ch, id, w := killedSource(t, h, step)
			sid := capsulespec.NewID()
			if _, err := ch.snapshotRPC(id, sid); err == nil {
				t.Fatalf("the snapshot answered although its agent was killed at %s", step)
			}
			c.kill()

			ta := h.startAgent(t, "", nil)
			snapW := *w // what a kept snapshot holds; the source's check writes more
			snapW.files = maps.Clone(w.files)
			outcome := recoveredSource(t, ta, h.dataDir, id, step, w)
			names := snapshotEntries(h.dataDir)
			switch {
			case len(names) == 0:
				outcome += ", no snapshot"
			case slices.Equal(names, []string{sid}):
				outcome += ", snapshot kept"
				if step != stepSnapshotCommit {
					t.Errorf("after a kill at %s the snapshot was kept", step)
				}
				sb, err := ta.fromSnapshot(sid, "after-kill", nil)
				if err != nil {
					t.Fatalf("after a kill at %s: create from the kept snapshot: %v", step, err)
				}
				snapW.check(t, ta.process(sb.Id, "after-kill", "root"), 2)
				ta.destroyRPC(t, sb.Id)
				ta.deleteSnapshotRPC(t, sid)
			default:
				t.Errorf("after a kill at %s: snapshots directory holds %v", step, names)
			}
			outcomes[outcome] = append(outcomes[outcome], step)
			ta.destroyRPC(t, id)
			ta.stop()
			assertNoSnapshots(t, h.dataDir, "after a kill at "+step)
		})
	}
	for o, at := range outcomes {
		t.Logf("%s after a kill at: %s", o, strings.Join(at, ", "))
	}
	assertClean(t, h.dataDir)
}

// TestSnapshotPool is TestSnapshot with a warm pool of the snapshot: a
// create from it claims a sandbox restored ahead of time (its runtime is
// the pooled one) that holds the snapshot's memory pattern, files and
// processes with the same PIDs, takes its own token and refuses the
// pool's and the source's; files written in it are not in the
// other claimed one. Nothing is left on the host.
func TestSnapshotPool(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", nil)
	src := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 128, TimeoutSeconds: 600, AccessToken: "source-token"})
	pc := ta.process(src.Id, "source-token", "root")
	w := newForkWorld(t, pc)
	before := pids(t, pc)
	sid := capsulespec.NewID()
	if _, err := ta.snapshotRPC(src.Id, sid); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	snapW := *w
	snapW.files = maps.Clone(w.files)
	ta.destroyRPC(t, src.Id)
	if err := ta.setSnapshotPoolsRPC(map[string]uint32{sid: 1}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	clients := map[string]processpbconnect.ProcessClient{}
	for i := range 2 {
		eventually(t, time.Minute, "a pooled sandbox of the snapshot", func() bool { return len(ta.pooledOf(sid)) == 1 })
		pooled := ta.pooledOf(sid)[0]
		poolToken := ta.lookupPooled(t, pooled).cfg.AccessToken
		sb, err := ta.fromSnapshot(sid, fmt.Sprintf("token-%d", i), nil)
		if err != nil {
			t.Fatalf("create %d from the snapshot: %v", i, err)
		}
		if rid := ta.runtimeOf(t, sb.Id); rid != pooled {
			t.Fatalf("create %d from the snapshot ran in %s, want the pooled %s", i, rid, pooled)
		}
		ids = append(ids, sb.Id)
		clients[sb.Id] = ta.assertRestoredCopy(t, sb.Id, fmt.Sprintf("token-%d", i), &snapW, before, 100+i)
		if code, _ := ta.envdGet(t, sb.Id, poolToken, "/envs"); code != http.StatusUnauthorized {
			t.Errorf("claimed sandbox %s: /envs with the pool's token: %d, want 401", sb.Id, code)
		}
	}
	ta.assertOwnWrites(t, ids, clients)
	if err := ta.setSnapshotPoolsRPC(nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the pool emptied", func() bool { return len(ta.pooledOf(sid)) == 0 })
	for _, id := range ids {
		ta.destroyRPC(t, id)
	}
	ta.deleteSnapshotRPC(t, sid)
	assertClean(t, h.dataDir)
}
