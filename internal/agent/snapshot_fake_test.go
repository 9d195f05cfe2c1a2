package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/testenv"
)

// snapshotRPC snapshots sandbox id as snapshot sid through the API.
func (ta *testAgent) snapshotRPC(id, sid string) (*agentpb.CreateSnapshotResponse, error) {
	resp, err := ta.client.CreateSnapshot(context.Background(), connect.NewRequest(&agentpb.CreateSnapshotRequest{SandboxId: id, SnapshotId: sid}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// fromSnapshot starts a sandbox from snapshot sid through the API with
// token and the extra env vars env.
func (ta *testAgent) fromSnapshot(sid, token string, env map[string]string) (*agentpb.Sandbox, error) {
	return ta.tryCreate(&agentpb.SandboxConfig{Id: capsulespec.NewID(), SnapshotId: sid, AccessToken: token, EnvVars: env,
		TimeoutSeconds: 600})
}

// restoreResult is the answer of a create from a snapshot.
type restoreResult struct {
	sb  *agentpb.Sandbox
	err error
}

// fromSnapshotAsync starts a sandbox from snapshot sid in a goroutine
// (as fromSnapshot) and sends its result.
func (ta *testAgent) fromSnapshotAsync(sid, token string) <-chan restoreResult {
	out := make(chan restoreResult, 1)
	go func() {
		sb, err := ta.fromSnapshot(sid, token, nil)
		out <- restoreResult{sb, err}
	}()
	return out
}

// listSnapshotsRPC lists the agent's snapshots by ID.
func (ta *testAgent) listSnapshotsRPC(t testing.TB) map[string]*agentpb.Snapshot {
	t.Helper()
	resp, err := ta.client.ListSnapshots(context.Background(), connect.NewRequest(&agentpb.ListSnapshotsRequest{}))
	if err != nil {
		t.Fatalf("list snapshots: %v", err)
	}
	out := map[string]*agentpb.Snapshot{}
	for _, s := range resp.Msg.Snapshots {
		out[s.Id] = s
	}
	return out
}

func (ta *testAgent) deleteSnapshotRPC(t testing.TB, sid string) {
	t.Helper()
	if _, err := ta.client.DeleteSnapshot(context.Background(), connect.NewRequest(&agentpb.DeleteSnapshotRequest{Id: sid})); err != nil {
		t.Fatalf("delete snapshot %s: %v", sid, err)
	}
}

// snapshotEntries lists the names under the data dir's snapshots
// directory: complete snapshots and temporaries.
func snapshotEntries(dataDir string) []string {
	entries, _ := os.ReadDir(filepath.Join(dataDir, snapshotsDirName))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestFakeSnapshot snapshots a sandbox and starts three sandboxes from it
// at once: each runs with the source's env vars plus its own, its own
// token (the source's is refused), the snapshot's template and sizes;
// the source runs on; the snapshot outlives its source, is listed with
// its size, counts in Ping's disk, and once deleted is gone for good,
// leaving the sandboxes started from it running.
func TestFakeSnapshot(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, nil)
	envs := map[string]string{"GREETING": "hi"}
	src := ta.create(t, &agentpb.SandboxConfig{AccessToken: "source-token", EnvVars: envs, TimeoutSeconds: 600, MemoryMb: 300})
	before := ta.ping(t).DiskAllocatedBytes
	sid := capsulespec.NewID()
	resp, err := ta.snapshotRPC(src.Id, sid)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	s := resp.Snapshot
	if s.Id != sid || s.SandboxId != src.Id || s.Template != src.Config.Template || s.MemoryMb != 300 || s.Vcpus != src.Config.Vcpus ||
		s.DiskBytes != src.Config.DiskBytes || s.SizeBytes <= 0 || s.CreatedAt == nil {
		t.Errorf("snapshot %v, source %v", s, src.Config)
	}
	if resp.Sandbox.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING || !resp.Sandbox.EndAt.AsTime().Equal(src.EndAt.AsTime()) {
		t.Errorf("the source after the snapshot: %v", resp.Sandbox)
	}
	ta.wantEnvs(t, src.Id, "source-token", envs, "in the source after the snapshot")
	fi, err := os.Stat(filepath.Join(w.dataDir, snapshotsDirName, sid, snapshotMetaName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot metadata: %v %v, want mode 0600", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(w.dataDir, snapshotsDirName, sid, snapshotMetaName)); !strings.Contains(string(b), "source-token") {
		t.Errorf("the metadata does not keep the source's token, which a restore needs")
	}
	if got := ta.listSnapshotsRPC(t)[sid]; got == nil || got.SizeBytes != s.SizeBytes || got.SandboxId != src.Id {
		t.Errorf("listed %v, want %v", got, s)
	}
	if after := ta.ping(t).DiskAllocatedBytes; after != before+uint64(s.SizeBytes) {
		t.Errorf("ping's disk_allocated_bytes %d after the snapshot, %d before: want the snapshot's %d bytes more", after, before, s.SizeBytes)
	}

	var wg sync.WaitGroup
	made := make([]*agentpb.Sandbox, 3)
	errs := make([]error, 3)
	for i := range made {
		wg.Go(func() {
			made[i], errs[i] = ta.fromSnapshot(sid, "token-"+string(rune('a'+i)), map[string]string{"MINE": string(rune('a' + i))})
		})
	}
	wg.Wait()
	for i, sb := range made {
		if errs[i] != nil {
			t.Fatalf("sandbox %d from the snapshot: %v", i, errs[i])
		}
		cfg := sb.Config
		if sb.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING || cfg.SnapshotId != sid || cfg.Template != src.Config.Template ||
			cfg.MemoryMb != 300 || cfg.DiskBytes != s.DiskBytes || cfg.AccessToken != "" || len(cfg.EnvVars) != 0 || sb.Address == src.Address {
			t.Errorf("sandbox %d from the snapshot: %v", i, sb)
		}
		token := "token-" + string(rune('a'+i))
		ta.wantEnvs(t, sb.Id, token, map[string]string{"GREETING": "hi", "MINE": string(rune('a' + i))}, "in sandbox "+sb.Id)
		if code, _ := ta.envdGet(t, sb.Id, "source-token", "/envs"); code != http.StatusUnauthorized {
			t.Errorf("sandbox %d: the source's token got %d, want 401", i, code)
		}
		if _, err := os.Stat(filepath.Join(w.dataDir, "sandboxes", sb.Id, restoreDirName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("sandbox %d keeps the links of the snapshot's images: %v", i, err)
		}
		rec, err := readState(filepath.Join(w.dataDir, "sandboxes", sb.Id))
		if err != nil || rec.Status != statusRunning {
			t.Errorf("sandbox %d state file: %v %v", i, rec.Status, err)
		}
	}
	ta.wantEnvs(t, src.Id, "source-token", envs, "in the source after the restores")

	// The snapshot outlives its source, and the new sandboxes survive
	// its deletion.
	ta.destroyRPC(t, src.Id)
	late, err := ta.fromSnapshot(sid, "late", nil)
	if err != nil {
		t.Fatalf("start from the snapshot after its source is gone: %v", err)
	}
	ta.wantEnvs(t, late.Id, "late", envs, "in a sandbox started after the source is gone")
	ta.deleteSnapshotRPC(t, sid)
	ta.deleteSnapshotRPC(t, sid) // idempotent
	if got := ta.listSnapshotsRPC(t); len(got) != 0 {
		t.Errorf("listed after the delete: %v", got)
	}
	if _, err := ta.fromSnapshot(sid, "x", nil); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("start from a deleted snapshot: %v, want not_found", err)
	}
	for i, sb := range append(made, late) {
		token, want := "late", envs
		if i < len(made) {
			token, want = "token-"+string(rune('a'+i)), map[string]string{"GREETING": "hi", "MINE": string(rune('a' + i))}
		}
		ta.wantEnvs(t, sb.Id, token, want, "after the snapshot's delete")
		ta.destroyRPC(t, sb.Id)
	}
	w.assertEmpty(t, "after destroying everything")
}

// ping calls Ping.
func (ta *testAgent) ping(t testing.TB) *agentpb.PingResponse {
	t.Helper()
	resp, err := ta.client.Ping(context.Background(), connect.NewRequest(&agentpb.PingRequest{}))
	if err != nil {
		t.Fatalf("ping: %v", err)
	}
	return resp.Msg
}

// TestFakeSnapshotRefusals: bad IDs, unknown or paused sources, a
// source of the unique-address layout, a snapshot ID in use, the host's
// cap on snapshots, a create naming another template or an unknown
// snapshot. None leaves anything.
func TestFakeSnapshotRefusals(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, func(c *Config) { c.MaxSnapshots = 1 })
	src := ta.create(t, &agentpb.SandboxConfig{TimeoutSeconds: 600})
	sid := capsulespec.NewID()
	for _, c := range []struct {
		name    string
		id, sid string
		code    connect.Code
	}{
		{"bad snapshot id", src.Id, "../x", connect.CodeInvalidArgument},
		{"no snapshot id", src.Id, "", connect.CodeInvalidArgument},
		{"unknown sandbox", capsulespec.NewID(), sid, connect.CodeNotFound},
	} {
		if _, err := ta.snapshotRPC(c.id, c.sid); connect.CodeOf(err) != c.code {
			t.Errorf("%s: %v, want %v", c.name, err, c.code)
		}
	}
	if len(snapshotEntries(w.dataDir)) != 0 {
		t.Errorf("refused snapshots left %v", snapshotEntries(w.dataDir))
	}
	if _, err := ta.snapshotRPC(src.Id, sid); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.snapshotRPC(src.Id, sid); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Errorf("a snapshot id in use: %v, want already_exists", err)
	}
	if _, err := ta.snapshotRPC(src.Id, capsulespec.NewID()); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("past MaxSnapshots: %v, want resource_exhausted", err)
	}
	for _, c := range []struct {
		name string
		cfg  *agentpb.SandboxConfig
		code connect.Code
	}{
		{"another template", &agentpb.SandboxConfig{SnapshotId: sid, Template: "base"}, connect.CodeInvalidArgument},
		{"unknown snapshot", &agentpb.SandboxConfig{SnapshotId: capsulespec.NewID()}, connect.CodeNotFound},
		{"bad snapshot id", &agentpb.SandboxConfig{SnapshotId: "../../etc"}, connect.CodeInvalidArgument},
		{"bad sandbox id", &agentpb.SandboxConfig{Id: "short", SnapshotId: sid}, connect.CodeInvalidArgument},
		{"its own id taken", &agentpb.SandboxConfig{Id: src.Id, SnapshotId: sid}, connect.CodeAlreadyExists},
	} {
		if _, err := ta.tryCreate(c.cfg); connect.CodeOf(err) != c.code {
			t.Errorf("create from a snapshot, %s: %v, want %v", c.name, err, c.code)
		}
	}
	w.onlySource(t, src.Id, "after the refused creates")
	if err := ta.deleteSnapshot("../.."); err == nil {
		t.Errorf("delete of a malformed snapshot id succeeded")
	}
	ta.deleteSnapshotRPC(t, sid)

	if _, err := ta.pauseRPC(src.Id, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.snapshotRPC(src.Id, capsulespec.NewID()); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("snapshot of a paused sandbox: %v, want failed_precondition", err)
	}
	ta.destroyRPC(t, src.Id)
	w.net.unique.Store(true)
	old := ta.create(t, nil)
	if _, err := ta.snapshotRPC(old.Id, capsulespec.NewID()); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("snapshot of a sandbox with its own guest address: %v, want failed_precondition", err)
	}
	ta.destroyRPC(t, old.Id)
	w.assertEmpty(t, "after the refusals")
}

// TestFakeSnapshotFailureInjection fails a CreateSnapshot after each of
// its steps (no snapshot left, temporaries included; the source runs on
// with its token and env vars), then a create from a good snapshot
// after each of its steps (nothing of the sandbox left, the snapshot
// intact and usable).
func TestFakeSnapshotFailureInjection(t *testing.T) {
	w := newFakeWorld(t)
	var at atomic.Value
	ta := w.startAgent(t, func(c *Config) { c.failAt = failHook(&at) })
	envs := map[string]string{"K": "v"}
	src := ta.create(t, &agentpb.SandboxConfig{AccessToken: "source-token", EnvVars: envs, TimeoutSeconds: 600})
	for _, step := range snapshotSteps {
		at.Store(step)
		_, err := ta.snapshotRPC(src.Id, capsulespec.NewID())
		at.Store("")
		if !injected(err) {
			t.Fatalf("snapshot failing at %s: %v, want the injected error", step, err)
		}
		if got := ta.getRPC(t, src.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
			t.Fatalf("source after a snapshot failing at %s: %v", step, got)
		}
		ta.wantEnvs(t, src.Id, "source-token", envs, "the source after a snapshot failing at "+step)
		if names := snapshotEntries(w.dataDir); len(names) != 0 {
			t.Errorf("after a snapshot failing at %s: %v left", step, names)
		}
		if _, err := os.Stat(filepath.Join(w.dataDir, "sandboxes", src.Id, snapshotDirName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after a snapshot failing at %s: the source's checkpoint is kept: %v", step, err)
		}
		w.onlySource(t, src.Id, "after a snapshot failing at "+step)
	}
	sid := capsulespec.NewID()
	if _, err := ta.snapshotRPC(src.Id, sid); err != nil {
		t.Fatal(err)
	}
	for _, step := range snapshotRestoreSteps {
		at.Store(step)
		_, err := ta.fromSnapshot(sid, "new-token", nil)
		at.Store("")
		if !injected(err) {
			t.Fatalf("create from a snapshot failing at %s: %v, want the injected error", step, err)
		}
		w.onlySource(t, src.Id, "after a create from a snapshot failing at "+step)
	}
	sb, err := ta.fromSnapshot(sid, "new-token", nil)
	if err != nil {
		t.Fatalf("create from the snapshot after the failures: %v", err)
	}
	ta.wantEnvs(t, sb.Id, "new-token", envs, "in the sandbox from the snapshot")
	ta.destroyRPC(t, sb.Id)
	ta.destroyRPC(t, src.Id)
	ta.deleteSnapshotRPC(t, sid)
	w.assertEmpty(t, "after everything")
}

// TestFakeSnapshotDamaged: a snapshot whose image changed, lost a file or
// its manifest is never restored: data_loss, nothing of the sandbox
// left, the snapshot kept for its owner to delete.
func TestFakeSnapshotDamaged(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, nil)
	src := ta.create(t, &agentpb.SandboxConfig{TimeoutSeconds: 600})
	for _, c := range []struct {
		name   string
		damage func(dir string) error
	}{
		{"a flipped byte", func(dir string) error {
			img := filepath.Join(dir, imagesDirName, onlyFile(t, filepath.Join(dir, imagesDirName)))
			b, err := os.ReadFile(img)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0x20
			// A new file, not a write through the link: the source's
			// images are gone already, but the test shows the check.
			os.Remove(img)
			return os.WriteFile(img, b, 0o600)
		}},
		{"an extra file", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, imagesDirName, "extra"), []byte("x"), 0o600)
		}},
		{"no manifest", func(dir string) error { return os.Remove(filepath.Join(dir, manifestFileName)) }},
		{"no images", func(dir string) error { return os.RemoveAll(filepath.Join(dir, imagesDirName)) }},
		{"no layer", func(dir string) error { return os.Remove(filepath.Join(dir, "upper.img")) }},
		{"a byte written into the layer", func(dir string) error { return writeAt(filepath.Join(dir, "upper.img"), 12345, []byte{0x5a}) }},
		{"a cut layer", func(dir string) error { return os.Truncate(filepath.Join(dir, "upper.img"), 4096) }},
	} {
		sid := capsulespec.NewID()
		if _, err := ta.snapshotRPC(src.Id, sid); err != nil {
			t.Fatal(err)
		}
		if err := c.damage(filepath.Join(w.dataDir, snapshotsDirName, sid)); err != nil {
			t.Fatal(err)
		}
		if _, err := ta.fromSnapshot(sid, "t", nil); connect.CodeOf(err) != connect.CodeDataLoss {
			t.Errorf("create from a snapshot with %s: %v, want data_loss", c.name, err)
		}
		w.onlySource(t, src.Id, "after a create from a snapshot with "+c.name)
		if got := ta.listSnapshotsRPC(t)[sid]; got == nil {
			t.Errorf("the snapshot with %s is not listed any more", c.name)
		}
		ta.deleteSnapshotRPC(t, sid)
	}
	ta.destroyRPC(t, src.Id)
	w.assertEmpty(t, "after the damaged snapshots")
}

// writeAt writes b at off of the existing file at path.
func writeAt(path string, off int64, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(b, off)
	return errors.Join(err, f.Close())
}

// onlyFile is the name of the one file in dir.
func onlyFile(t testing.TB, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("%s: %d entries, %v; want one file", dir, len(entries), err)
	}
	return entries[0].Name()
}

// TestFakeSnapshotDeleteWhileRestoring deletes a snapshot while a sandbox
// is being restored from it: held after its copy (the delete goes
// through at once and the restore runs from its own copies) and held
// during its copy (the delete waits for the copy, then goes through).
// Both restores end running with the snapshot's state; the snapshot is
// gone.
func TestFakeSnapshotDeleteWhileRestoring(t *testing.T) {
	for _, holdAt := range []string{stepForkNetwork, stepForkCopy} {
		t.Run(holdAt, func(t *testing.T) {
			w := newFakeWorld(t)
			held, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			ta := w.startAgent(t, func(c *Config) {
				c.failAt = func(step string) error {
					if step == holdAt {
						once.Do(func() { close(held); <-release })
					}
					return nil
				}
			})
			envs := map[string]string{"K": "v"}
			src := ta.create(t, &agentpb.SandboxConfig{AccessToken: "source-token", EnvVars: envs, TimeoutSeconds: 600})
			sid := capsulespec.NewID()
			if _, err := ta.snapshotRPC(src.Id, sid); err != nil {
				t.Fatal(err)
			}
			restored := ta.fromSnapshotAsync(sid, "new")
			<-held
			deleted := make(chan error, 1)
			go func() { deleted <- ta.deleteSnapshot(sid) }()
			if holdAt == stepForkNetwork {
				// The copy is done: the delete does not wait.
				if err := <-deleted; err != nil {
					t.Fatalf("delete while a restore runs from its copies: %v", err)
				}
				if names := snapshotEntries(w.dataDir); len(names) != 0 {
					t.Errorf("after the delete: %v", names)
				}
			}
			close(release)
			r := <-restored
			if r.err != nil {
				t.Fatalf("restore during a delete (held at %s): %v", holdAt, r.err)
			}
			if holdAt == stepForkCopy {
				if err := <-deleted; err != nil {
					t.Fatalf("delete after a copy: %v", err)
				}
			}
			ta.wantEnvs(t, r.sb.Id, "new", envs, "the sandbox restored while its snapshot was deleted")
			if names := snapshotEntries(w.dataDir); len(names) != 0 {
				t.Errorf("after the delete: %v", names)
			}
			ta.destroyRPC(t, r.sb.Id)
			ta.destroyRPC(t, src.Id)
			w.assertEmpty(t, "after everything")
		})
	}
}

// TestFakeSnapshotRestart: an agent dropped in the middle of a
// CreateSnapshot (the source running again, the snapshot not yet in
// place) leaves a temporary that the next agent removes; a complete
// snapshot survives the restart and starts sandboxes on the new agent,
// and the new agent's template store keeps its template.
func TestFakeSnapshotRestart(t *testing.T) {
	w := newFakeWorld(t)
	var at atomic.Value
	at.Store("")
	blocked, release := make(chan struct{}), make(chan struct{})
	ta := w.startAgent(t, func(c *Config) {
		c.failAt = func(step string) error {
			if step == at.Load().(string) {
				close(blocked)
				<-release
			}
			return nil
		}
	})
	envs := map[string]string{"K": "v"}
	src := ta.create(t, &agentpb.SandboxConfig{AccessToken: "source-token", EnvVars: envs, TimeoutSeconds: 600})
	kept := capsulespec.NewID()
	if _, err := ta.snapshotRPC(src.Id, kept); err != nil {
		t.Fatal(err)
	}
	at.Store(stepSnapshotMeta)
	cut := capsulespec.NewID()
	done := make(chan error, 1)
	go func() {
		_, err := ta.createSnapshot(context.Background(), &agentpb.CreateSnapshotRequest{SandboxId: src.Id, SnapshotId: cut})
		done <- err
	}()
	<-blocked
	if names := snapshotEntries(w.dataDir); len(names) != 2 || !strings.HasPrefix(names[0], ".tmp-"+cut) {
		t.Fatalf("while a snapshot is made: %v, want its temporary and the kept one", names)
	}
	ta.killed = true
	ta.stop()
	w.net.restart()
	tb := w.startAgent(t, nil)
	if names := snapshotEntries(w.dataDir); len(names) != 1 || names[0] != kept {
		t.Errorf("after the restart: %v, want only %s", names, kept)
	}
	if got := tb.getRPC(t, src.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
		t.Errorf("the source after a restart during a snapshot: %v", got)
	}
	sb, err := tb.fromSnapshot(kept, "after-restart", nil)
	if err != nil {
		t.Fatalf("create from a snapshot of the previous agent: %v", err)
	}
	tb.wantEnvs(t, sb.Id, "after-restart", envs, "in a sandbox from the previous agent's snapshot")
	close(release)
	if err := <-done; err == nil {
		t.Errorf("the dropped agent's snapshot succeeded after its temporary was removed")
	}
	if names := snapshotEntries(w.dataDir); len(names) != 1 || names[0] != kept {
		t.Errorf("after the dropped agent's snapshot gave up: %v, want only %s", names, kept)
	}
	tb.destroyRPC(t, sb.Id)
	tb.destroyRPC(t, src.Id)
	// With no sandbox left, the snapshot alone keeps its template
	// version from the template store's prune.
	meta, err := readSnapshotMeta(filepath.Join(w.dataDir, snapshotsDirName, kept))
	if err != nil {
		t.Fatal(err)
	}
	if held, err := tb.templatesHeld(); err != nil || !slices.Equal(held, []string{meta.Template}) {
		t.Errorf("templates held by the snapshot alone: %v %v, want [%s]", held, err, meta.Template)
	}
	tb.deleteSnapshotRPC(t, kept)
	if held, err := tb.templatesHeld(); err != nil || len(held) != 0 {
		t.Errorf("templates held after the delete: %v %v", held, err)
	}
	w.assertEmpty(t, "after everything")
}

// TestFakeSnapshotNoDisk: a host whose free disk above its reserve is
// less than a snapshot may take (the layer as it holds now plus the
// memory limit) refuses CreateSnapshot with resource_exhausted, leaving
// nothing, while the sandbox itself fits.
func TestFakeSnapshotNoDisk(t *testing.T) {
	w := newFakeWorld(t)
	var fs unix.Statfs_t
	if err := unix.Statfs(w.dataDir, &fs); err != nil {
		t.Fatal(err)
	}
	avail := int64(fs.Bavail) * int64(fs.Bsize)
	if avail < 2<<30 {
		testenv.Missing(t, fmt.Sprintf("%d MiB free in the test's temporary directory: too little to leave 1 GiB above a reserve", avail>>20))
	}
	ta := w.startAgent(t, func(c *Config) { c.DiskReserveBytes = avail - 1<<30 })
	src := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 4096, TimeoutSeconds: 600})
	if _, err := ta.snapshotRPC(src.Id, capsulespec.NewID()); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("snapshot of a 4 GiB sandbox with 1 GiB free above the reserve: %v, want resource_exhausted", err)
	}
	if names := snapshotEntries(w.dataDir); len(names) != 0 {
		t.Errorf("a refused snapshot left %v", names)
	}
	if got := ta.getRPC(t, src.Id); got.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING {
		t.Errorf("the source after a refused snapshot: %v", got)
	}
	ta.destroyRPC(t, src.Id)
	w.assertEmpty(t, "after the refusal")
}
