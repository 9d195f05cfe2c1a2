package lifecycle_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	. "nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/lifecycle/fakehost"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/store"
)

// ready takes a snapshot of capsule id and waits for it to be ready.
func (f *fixture) ready(t *testing.T, id string, opts SnapshotOptions) nestbox.Snapshot {
	t.Helper()
	sn, err := f.svc.Snapshot(context.Background(), team, id, opts)
	if err != nil {
		t.Fatalf("Snapshot(%s, %+v): %v", id, opts, err)
	}
	if sn.Status != nestbox.SnapshotCreating {
		t.Fatalf("Snapshot answered %s, want creating", sn.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := f.svc.WaitSnapshot(ctx, team, sn.ID)
	if err != nil || got.Status != nestbox.SnapshotReady {
		t.Fatalf("WaitSnapshot(%s) = %s, %v; want ready", sn.ID, got.Status, err)
	}
	return got
}

// TestSnapshotStartsCapsules: a snapshot of a running capsule records the
// source's template, sizes and egress rules and the host's size; the
// source runs on; capsules start from it by every form of its reference,
// each its own capsule on the snapshot's host with the snapshot's sizes;
// another team sees none of it.
func TestSnapshotStartsCapsules(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	no := false
	src := f.running(t, nestbox.CreateCapsuleRequest{MemoryMB: 1024, VCPUs: 2, Internet: &no, EnvVars: map[string]string{"A": "1"}})
	sn := f.ready(t, src.ID, SnapshotOptions{Name: "env"})
	if sn.Name != "env:default" || sn.CapsuleID != src.ID || sn.HostID != "h1" || sn.Template != "base" || sn.VCPUs != 2 || sn.MemoryMB != 1024 ||
		sn.DiskMB != fakehost.DefaultDiskBytes>>20 || sn.Internet || sn.SizeBytes != 1024<<20+fakehost.SnapshotOverhead {
		t.Fatalf("snapshot = %+v, want env:default of %s with its sizes and the host's size", sn, src.ID)
	}
	if !f.agent.HasSnapshot(sn.ID) {
		t.Fatal("the host keeps no snapshot")
	}
	if got, _ := f.svc.Get(ctx, team, src.ID); got.Status != nestbox.StatusRunning {
		t.Errorf("source is %s after the snapshot, want running", got.Status)
	}
	seen := map[string]bool{src.ID: true}
	for _, ref := range []string{"env", "env:default", sn.ID, sn.ID + ":default"} {
		c, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{Template: ref, EnvVars: map[string]string{"B": "2"}})
		if err != nil {
			t.Fatalf("create from %q: %v", ref, err)
		}
		c = f.settle(t, c.ID, nestbox.StatusRunning)
		if seen[c.ID] || c.SnapshotID != sn.ID || c.Template != "base" || c.VCPUs != 2 || c.MemoryMB != 1024 || c.Internet {
			t.Errorf("create from %q = %+v, want a new capsule of snapshot %s with its sizes", ref, c, sn.ID)
		}
		seen[c.ID] = true
		rec, _ := f.store.GetCapsule(ctx, c.ID)
		if rec.EnvVars["A"] != "1" || rec.EnvVars["B"] != "2" || rec.AccessToken == "" {
			t.Errorf("create from %q kept env %v, want the source's and the request's, and its own token", ref, rec.EnvVars)
		}
	}
	cfgs := f.agent.CreateConfigs()
	if last := cfgs[len(cfgs)-1]; last.GetSnapshotId() != sn.ID || last.GetTemplate() != "base" {
		t.Errorf("the host was asked for %+v, want snapshot %s", last, sn.ID)
	}
	for _, tc := range []struct {
		name string
		req  nestbox.CreateCapsuleRequest
		want error
	}{
		{"other vcpus", nestbox.CreateCapsuleRequest{Template: "env", VCPUs: 1}, errdefs.ErrInvalid},
		{"other memory", nestbox.CreateCapsuleRequest{Template: "env", MemoryMB: 512}, errdefs.ErrInvalid},
		{"internet on", nestbox.CreateCapsuleRequest{Template: "env", Internet: ptr(true)}, errdefs.ErrInvalid},
		{"unknown name", nestbox.CreateCapsuleRequest{Template: "nope:v1"}, errdefs.ErrNotFound},
	} {
		if _, err := f.svc.Create(ctx, team, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Another team: not found by every call.
	if _, err := f.svc.GetSnapshot(ctx, "team_b", sn.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("another team's GetSnapshot: %v, want not found", err)
	}
	if err := f.svc.DeleteSnapshot(ctx, "team_b", sn.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("another team's DeleteSnapshot: %v, want not found", err)
	}
	if _, err := f.svc.Create(ctx, "team_b", nestbox.CreateCapsuleRequest{Template: sn.ID}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("another team's create from the snapshot: %v, want not found", err)
	}
	if l, err := f.svc.ListSnapshots(ctx, "team_b", SnapshotFilter{}); err != nil || len(l.Snapshots) != 0 {
		t.Errorf("another team's list = %v, %v; want empty", l.Snapshots, err)
	}
	if _, err := f.svc.CreateTemplate(ctx, "team_b", "stolen", sn.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("another team's template from the snapshot: %v, want not found", err)
	}
}

// TestSnapshotRefusals: bad names, a taken name, a source that is not
// running or not the team's are refused, and nothing is recorded.
func TestSnapshotRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.running(t, nestbox.CreateCapsuleRequest{})
	f.ready(t, c.ID, SnapshotOptions{Name: "taken:v1"})
	paused := f.running(t, nestbox.CreateCapsuleRequest{})
	if _, err := f.svc.Pause(ctx, team, paused.ID, PauseOptions{Memory: true}); err != nil {
		t.Fatal(err)
	}
	f.settle(t, paused.ID, nestbox.StatusPaused)
	for _, tc := range []struct {
		name, id, snap string
		team           string
		want           error
	}{
		{"bad name", c.ID, "Bad Name", team, errdefs.ErrInvalid},
		{"empty tag", c.ID, "x:", team, errdefs.ErrInvalid},
		{"slash", c.ID, "team/x", team, errdefs.ErrInvalid},
		{"too long", c.ID, string(make([]byte, 64)), team, errdefs.ErrInvalid},
		{"taken", c.ID, "taken:v1", team, errdefs.ErrAlreadyExists},
		{"paused source", paused.ID, "", team, errdefs.ErrConflict},
		{"unknown source", "zzzzzzzzzzzzzzzzzzzz", "", team, errdefs.ErrNotFound},
		{"another team's source", c.ID, "", "team_b", errdefs.ErrNotFound},
	} {
		if _, err := f.svc.Snapshot(ctx, tc.team, tc.id, SnapshotOptions{Name: tc.snap}); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if l, _ := f.svc.ListSnapshots(ctx, team, SnapshotFilter{}); len(l.Snapshots) != 1 || f.agent.SnapshotCount() != 1 {
		t.Errorf("%d snapshots recorded, %d on the host; want only the first", len(l.Snapshots), f.agent.SnapshotCount())
	}
}

// TestSnapshotPause: with Pause the source is paused once the snapshot is
// taken.
func TestSnapshotPause(t *testing.T) {
	f := newFixture(t)
	c := f.running(t, nestbox.CreateCapsuleRequest{})
	f.ready(t, c.ID, SnapshotOptions{Pause: true})
	f.settle(t, c.ID, nestbox.StatusPaused)
}

// TestSnapshotFailureLeavesNoRow: a CreateSnapshot that fails leaves no
// row and no snapshot on the host; WaitSnapshot returns the failure; the
// source is running if the host says so, error if the failure lost it.
func TestSnapshotFailureLeavesNoRow(t *testing.T) {
	for _, gone := range []bool{false, true} {
		f := newFixture(t)
		ctx := context.Background()
		c := f.running(t, nestbox.CreateCapsuleRequest{})
		f.agent.FailNextSnapshot(connect.NewError(connect.CodeInternal, errors.New("checkpoint broke")), gone)
		sn, err := f.svc.Snapshot(ctx, team, c.ID, SnapshotOptions{Name: "x"})
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err = f.svc.WaitSnapshot(wctx, team, sn.ID)
		cancel()
		if err == nil {
			t.Fatalf("gone %v: WaitSnapshot of a failed snapshot: nil error", gone)
		}
		if _, err := f.svc.GetSnapshot(ctx, team, sn.ID); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("gone %v: the failed snapshot's row: %v, want not found", gone, err)
		}
		if _, err := f.store.GetSnapshot(ctx, sn.ID); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("gone %v: the store has the failed snapshot: %v", gone, err)
		}
		if f.agent.SnapshotCount() != 0 {
			t.Errorf("gone %v: the host keeps %d snapshots", gone, f.agent.SnapshotCount())
		}
		want := nestbox.StatusRunning
		if gone {
			want = nestbox.StatusError
		}
		f.settle(t, c.ID, want)
		// The name is free again.
		if !gone {
			f.ready(t, c.ID, SnapshotOptions{Name: "x"})
		}
	}
}

// TestSnapshotLimits: the team's snapshot count and its disk (capsules'
// and snapshots' together) are limits, refused with ErrExhausted.
func TestSnapshotLimits(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.TeamQuota = store.Quota{Snapshots: 2} })
	ctx := context.Background()
	c := f.running(t, nestbox.CreateCapsuleRequest{})
	f.ready(t, c.ID, SnapshotOptions{})
	f.ready(t, c.ID, SnapshotOptions{})
	if _, err := f.svc.Snapshot(ctx, team, c.ID, SnapshotOptions{}); !errors.Is(err, errdefs.ErrExhausted) {
		t.Errorf("a third snapshot under a limit of 2: %v, want ErrExhausted", err)
	}
	// Disk: a 5 GiB capsule and a snapshot of up to 5.5 GiB pass 10 GiB.
	f = newFixture(t, func(c *Config) { c.TeamQuota = store.Quota{DiskMB: 10 << 10} })
	c = f.running(t, nestbox.CreateCapsuleRequest{})
	if _, err := f.svc.Snapshot(ctx, team, c.ID, SnapshotOptions{}); !errors.Is(err, errdefs.ErrExhausted) {
		t.Errorf("a snapshot past the disk limit: %v, want ErrExhausted", err)
	}
	if l, _ := f.svc.ListSnapshots(ctx, team, SnapshotFilter{}); len(l.Snapshots) != 0 {
		t.Errorf("refused snapshots were recorded: %v", l.Snapshots)
	}
}

// TestSnapshotList pages a team's snapshots newest first and filters them
// by capsule and by name.
func TestSnapshotList(t *testing.T) {
	f := newFixture(t, unlimited)
	ctx := context.Background()
	a := f.running(t, nestbox.CreateCapsuleRequest{})
	b := f.running(t, nestbox.CreateCapsuleRequest{})
	var want []string
	for i, c := range []nestbox.Capsule{a, a, b, a, b} {
		name := ""
		if i == 2 {
			name = "b-one:v2"
		}
		want = append([]string{f.ready(t, c.ID, SnapshotOptions{Name: name}).ID}, want...)
	}
	var got []string
	pages := 0
	for fl := (SnapshotFilter{Limit: 2}); ; pages++ {
		l, err := f.svc.ListSnapshots(ctx, team, fl)
		if err != nil {
			t.Fatal(err)
		}
		for _, sn := range l.Snapshots {
			got = append(got, sn.ID)
		}
		if l.NextCursor == "" {
			break
		}
		fl.Cursor = l.NextCursor
	}
	if !slices.Equal(got, want) || pages != 2 {
		t.Errorf("pages of 2: %v in %d+1 pages, want %v (newest first) in 3", got, pages, want)
	}
	if l, _ := f.svc.ListSnapshots(ctx, team, SnapshotFilter{CapsuleID: b.ID}); len(l.Snapshots) != 2 {
		t.Errorf("snapshots of %s: %d, want 2", b.ID, len(l.Snapshots))
	}
	for _, name := range []string{"b-one:v2"} {
		if l, _ := f.svc.ListSnapshots(ctx, team, SnapshotFilter{Name: name}); len(l.Snapshots) != 1 || l.Snapshots[0].ID != want[2] {
			t.Errorf("snapshots named %q: %v, want [%s]", name, l.Snapshots, want[2])
		}
	}
	for _, name := range []string{"b-one", "Bad Name"} {
		if l, err := f.svc.ListSnapshots(ctx, team, SnapshotFilter{Name: name}); err != nil || len(l.Snapshots) != 0 {
			t.Errorf("snapshots named %q: %v, %v; want none", name, l.Snapshots, err)
		}
	}
	for _, fl := range []SnapshotFilter{{Limit: -1}, {Limit: MaxSnapshotPage + 1}, {Cursor: "bogus"}} {
		if _, err := f.svc.ListSnapshots(ctx, team, fl); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ListSnapshots(%+v): %v, want ErrInvalid", fl, err)
		}
	}
}

// TestSnapshotDelete: a delete removes the snapshot from its host and then
// its row; a capsule started from it runs on (it has its own copy); a
// snapshot being created cannot be deleted; a host that fails the delete
// leaves the snapshot ready.
func TestSnapshotDelete(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	src := f.running(t, nestbox.CreateCapsuleRequest{})
	sn := f.ready(t, src.ID, SnapshotOptions{Name: "gone"})
	child, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{Template: sn.ID})
	if err != nil {
		t.Fatal(err)
	}
	f.settle(t, child.ID, nestbox.StatusRunning)

	f.agent.SetDown(true)
	if err := f.svc.DeleteSnapshot(ctx, team, "gone"); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("delete with the host down: %v, want ErrUnavailable", err)
	}
	f.agent.SetDown(false)
	if got, err := f.svc.GetSnapshot(ctx, team, sn.ID); err != nil || got.Status != nestbox.SnapshotReady {
		t.Fatalf("after a failed delete the snapshot is %s, %v; want ready", got.Status, err)
	}
	if err := f.svc.DeleteSnapshot(ctx, team, "gone"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if f.agent.HasSnapshot(sn.ID) || !slices.Contains(f.agent.DeletedSnapshots(), sn.ID) {
		t.Error("the host still keeps the deleted snapshot")
	}
	if err := f.svc.DeleteSnapshot(ctx, team, sn.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a second delete: %v, want not found", err)
	}
	if got, _ := f.svc.Get(ctx, team, child.ID); got.Status != nestbox.StatusRunning || !f.agent.Has(child.ID) {
		t.Errorf("the capsule started from the deleted snapshot is %s, want running", got.Status)
	}
	if _, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{Template: sn.ID}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("create from a deleted snapshot: %v, want not found", err)
	}

	release := f.agent.HoldSnapshots()
	defer release()
	held, err := f.svc.Snapshot(ctx, team, src.ID, SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteSnapshot(ctx, team, held.ID); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("delete of a snapshot being created: %v, want ErrConflict", err)
	}
	if _, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{Template: held.ID}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("create from a snapshot being created: %v, want ErrConflict", err)
	}
	release()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if got, err := f.svc.WaitSnapshot(wctx, team, held.ID); err != nil || got.Status != nestbox.SnapshotReady {
		t.Fatalf("held snapshot after release: %s, %v", got.Status, err)
	}
}

// TestSnapshotTemplate: a snapshot promoted to a template starts capsules
// by the template's name and is listed with the team's templates only;
// the snapshot cannot be deleted while the template exists (the rule:
// delete the template first); names a host offers, or the team has, are
// taken.
func TestSnapshotTemplate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	src := f.running(t, nestbox.CreateCapsuleRequest{})
	sn := f.ready(t, src.ID, SnapshotOptions{})
	tpl, err := f.svc.CreateTemplate(ctx, team, "my-env", sn.ID)
	if err != nil || tpl.Name != "my-env" || tpl.SnapshotID != sn.ID {
		t.Fatalf("CreateTemplate = %+v, %v", tpl, err)
	}
	ts, err := f.svc.TeamTemplates(ctx, team)
	if err != nil || !slices.ContainsFunc(ts, func(t nestbox.Template) bool { return t.Name == "my-env" && t.SnapshotID == sn.ID }) {
		t.Errorf("team templates = %+v, %v; want my-env", ts, err)
	}
	if ts, _ := f.svc.TeamTemplates(ctx, "team_b"); slices.ContainsFunc(ts, func(t nestbox.Template) bool { return t.Name == "my-env" }) {
		t.Error("another team lists my-env")
	}
	c, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{Template: "my-env"})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.settle(t, c.ID, nestbox.StatusRunning); got.SnapshotID != sn.ID {
		t.Errorf("a capsule of template my-env has snapshot %q, want %s", got.SnapshotID, sn.ID)
	}
	if _, err := f.svc.Create(ctx, "team_b", nestbox.CreateCapsuleRequest{Template: "my-env"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("another team creates from my-env: %v, want not found", err)
	}
	other := f.ready(t, src.ID, SnapshotOptions{})
	for _, tc := range []struct {
		name, snap string
		want       error
	}{
		{"base", sn.ID, errdefs.ErrAlreadyExists},
		{"my-env", other.ID, errdefs.ErrAlreadyExists},
		{"My-Env", sn.ID, errdefs.ErrInvalid},
		{"bad name", sn.ID, errdefs.ErrInvalid},
		{"x", "", errdefs.ErrInvalid},
		{"x", "nope", errdefs.ErrNotFound},
	} {
		if _, err := f.svc.CreateTemplate(ctx, team, tc.name, tc.snap); !errors.Is(err, tc.want) {
			t.Errorf("CreateTemplate(%q, %q): %v, want %v", tc.name, tc.snap, err, tc.want)
		}
	}
	if err := f.svc.DeleteSnapshot(ctx, team, sn.ID); !errors.Is(err, errdefs.ErrConflict) || !f.agent.HasSnapshot(sn.ID) {
		t.Errorf("delete of a template's snapshot: %v, want ErrConflict and the snapshot kept", err)
	}
	if err := f.svc.DeleteTemplate(ctx, team, "base"); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("DeleteTemplate(base): %v, want ErrConflict", err)
	}
	if err := f.svc.DeleteTemplate(ctx, "team_b", "my-env"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("another team's DeleteTemplate: %v, want not found", err)
	}
	if err := f.svc.DeleteTemplate(ctx, team, "my-env"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{Template: "my-env"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("create from a deleted template: %v, want not found", err)
	}
	if err := f.svc.DeleteSnapshot(ctx, team, sn.ID); err != nil {
		t.Errorf("delete of the snapshot once its template is gone: %v", err)
	}
}

// TestReconcileSnapshots: a ready snapshot its host lost becomes error
// (and can be deleted); a snapshot the host keeps without a row is deleted
// there; a row left creating by a control plane that went away is made
// ready if the host has the snapshot, removed if not.
func TestReconcileSnapshots(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	src := f.running(t, nestbox.CreateCapsuleRequest{})
	lost := f.ready(t, src.ID, SnapshotOptions{})
	f.agent.ForgetSnapshot(lost.ID)
	// An orphan: the host has it, the store does not.
	if _, err := f.agent.CreateSnapshot(ctx, connect.NewRequest(&agentpb.CreateSnapshotRequest{SandboxId: src.ID, SnapshotId: "orphanorphanorphan00"})); err != nil {
		t.Fatal(err)
	}
	// Two rows left creating before this Service started, one of them on
	// the host.
	old := time.Now().Add(-time.Hour)
	for _, id := range []string{"stuckstuckstuckstuck", "stuckhoststuckhost00"} {
		row := store.Snapshot{Snapshot: nestbox.Snapshot{ID: id, TeamID: team, CapsuleID: src.ID, HostID: "h1", Status: nestbox.SnapshotCreating, Template: "base", CreatedAt: old}, UpdatedAt: old}
		if err := f.store.CreateSnapshotWithin(ctx, row, store.Quota{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.agent.CreateSnapshot(ctx, connect.NewRequest(&agentpb.CreateSnapshotRequest{SandboxId: src.ID, SnapshotId: "stuckhoststuckhost00"})); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := f.svc.GetSnapshot(ctx, team, lost.ID); err != nil || got.Status != nestbox.SnapshotError || got.Error == "" {
		t.Errorf("a snapshot its host lost: %+v, %v; want error with a reason", got, err)
	}
	if f.agent.HasSnapshot("orphanorphanorphan00") {
		t.Error("the orphan snapshot is still on the host")
	}
	if _, err := f.store.GetSnapshot(ctx, "stuckstuckstuckstuck"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a stuck snapshot the host does not have: %v, want its row removed", err)
	}
	if got, err := f.store.GetSnapshot(ctx, "stuckhoststuckhost00"); err != nil || got.Status != nestbox.SnapshotReady || got.SizeBytes == 0 {
		t.Errorf("a stuck snapshot the host has: %+v, %v; want ready with its size", got.Snapshot, err)
	}
	if err := f.svc.DeleteSnapshot(ctx, team, lost.ID); err != nil {
		t.Errorf("delete of a lost snapshot: %v", err)
	}
}

// TestTemplatePool: the warm pool of a team's template made from a
// snapshot is stored and sent to the snapshot's host; the team's pools
// together stay within TeamPooled; a host's template, an unknown one,
// another team's and a bad size are refused; a host that missed the
// change gets it at the next reconcile; deleting the template sends the
// host no pool.
func TestTemplatePool(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.TeamPooled = 3 })
	ctx := context.Background()
	src := f.running(t, nestbox.CreateCapsuleRequest{})
	sn := f.ready(t, src.ID, SnapshotOptions{})
	other := f.ready(t, src.ID, SnapshotOptions{})
	for name, id := range map[string]string{"env-a": sn.ID, "env-b": other.ID} {
		if _, err := f.svc.CreateTemplate(ctx, team, name, id); err != nil {
			t.Fatal(err)
		}
	}
	tpl, err := f.svc.SetTemplatePool(ctx, team, "env-a", 2)
	if err != nil || tpl.PoolSize != 2 || tpl.SnapshotID != sn.ID {
		t.Fatalf("SetTemplatePool(env-a, 2) = %+v, %v", tpl, err)
	}
	if pools, _ := f.agent.SnapshotPools(); !maps.Equal(pools, map[string]uint32{sn.ID: 2}) {
		t.Errorf("the host's pools: %v, want %s: 2", pools, sn.ID)
	}
	ts, _ := f.svc.TeamTemplates(ctx, team)
	if !slices.ContainsFunc(ts, func(t nestbox.Template) bool { return t.Name == "env-a" && t.PoolSize == 2 }) {
		t.Errorf("team templates = %+v; want env-a with a pool of 2", ts)
	}
	for _, tc := range []struct {
		team, name string
		size       int
		want       error
	}{
		{team, "env-b", 2, errdefs.ErrExhausted}, // 2 + 2 > 3
		{team, "base", 1, errdefs.ErrConflict},
		{team, "nope", 1, errdefs.ErrNotFound},
		{"team_b", "env-a", 1, errdefs.ErrNotFound},
		{team, "env-a", -1, errdefs.ErrInvalid},
		{team, "env-a", MaxTemplatePool + 1, errdefs.ErrInvalid},
	} {
		if _, err := f.svc.SetTemplatePool(ctx, tc.team, tc.name, tc.size); !errors.Is(err, tc.want) {
			t.Errorf("SetTemplatePool(%s, %s, %d): %v, want %v", tc.team, tc.name, tc.size, err, tc.want)
		}
	}
	// Down while the pool changes: stored, and sent by the reconcile.
	f.agent.SetDown(true)
	if _, err := f.svc.SetTemplatePool(ctx, team, "env-b", 1); err != nil {
		t.Fatalf("SetTemplatePool with the host down: %v", err)
	}
	f.agent.SetDown(false)
	if pools, _ := f.agent.SnapshotPools(); pools[other.ID] != 0 {
		t.Fatalf("a host that was down has the pool already: %v", pools)
	}
	if err := f.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if pools, _ := f.agent.SnapshotPools(); !maps.Equal(pools, map[string]uint32{sn.ID: 2, other.ID: 1}) {
		t.Errorf("the host's pools after the reconcile: %v", pools)
	}
	if err := f.svc.DeleteTemplate(ctx, team, "env-a"); err != nil {
		t.Fatal(err)
	}
	if pools, _ := f.agent.SnapshotPools(); !maps.Equal(pools, map[string]uint32{other.ID: 1}) {
		t.Errorf("the host's pools after env-a was deleted: %v", pools)
	}
}
