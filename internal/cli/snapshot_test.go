package cli

import (
	"strings"
	"testing"
)

// TestSnapshotVerbs: capsule snapshot prints the snapshot's ID and sends
// its name and --pause; snapshot ls lists and filters; template create
// --from-snapshot makes a template; snapshot rm refuses a template's
// snapshot until template rm, and reports unknown ones.
func TestSnapshotVerbs(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("cap1", nil)
	f.addCapsule("cap2", nil)
	res := f.runIO(t, Capsule, IO{StderrIsTerminal: true}, "snapshot", "--name", "env", "--pause", "cap1")
	if res.err != nil || res.stdout != "snap1\n" || !strings.Contains(res.stderr, "taking a snapshot of capsule cap1... done") {
		t.Fatalf("capsule snapshot: %v, stdout %q, stderr %q", res.err, res.stdout, res.stderr)
	}
	if len(f.snapshotReqs) != 1 || f.snapshotReqs[0].Name != "env" || !f.snapshotReqs[0].Pause {
		t.Errorf("snapshot requests %+v, want name env with pause", f.snapshotReqs)
	}
	if res := f.run(t, Capsule, "", "snapshot", "--name", "env", "cap1"); res.err == nil || !strings.Contains(res.err.Error(), "taken") {
		t.Errorf("a taken name: %v, want its error", res.err)
	}
	if res := f.run(t, Capsule, "", "snapshot", "cap2"); res.err != nil || res.stdout != "snap2\n" {
		t.Fatalf("capsule snapshot cap2: %v %q", res.err, res.stdout)
	}
	if res := f.run(t, Capsule, "", "snapshot", "nope"); res.err == nil {
		t.Error("snapshot of an unknown capsule: no error")
	}

	res = f.run(t, Snapshot, "", "ls")
	if res.err != nil || !strings.Contains(res.stdout, "snap1") || !strings.Contains(res.stdout, "env:default") || !strings.Contains(res.stdout, "snap2") {
		t.Fatalf("snapshot ls: %v\n%s", res.err, res.stdout)
	}
	res = f.run(t, Snapshot, "", "ls", "--capsule", "cap2", "--json")
	if res.err != nil || !strings.Contains(res.stdout, `"id": "snap2"`) || strings.Contains(res.stdout, `"id": "snap1"`) {
		t.Errorf("snapshot ls --capsule cap2 --json: %v\n%s", res.err, res.stdout)
	}
	if last := f.snapshotQuery[len(f.snapshotQuery)-1]; last != "capsule_id=cap2" {
		t.Errorf("snapshot ls --capsule sent %q", last)
	}
	if res := f.run(t, Snapshot, "", "ls", "--limit", "101"); res.err == nil {
		t.Error("snapshot ls --limit 101: no error")
	}

	if res := f.run(t, Template, "", "create", "my-env"); res.err == nil || !strings.Contains(res.err.Error(), "--from-snapshot") {
		t.Errorf("template create without --from-snapshot: %v", res.err)
	}
	if res := f.run(t, Template, "", "create", "--from-snapshot", "env", "my-env"); res.err != nil || res.stdout != "my-env\n" {
		t.Fatalf("template create: %v %q", res.err, res.stdout)
	}
	if res := f.run(t, Template, "", "pool", "my-env", "2"); res.err != nil || res.stdout != "my-env: pool of 2\n" {
		t.Errorf("template pool: %v %q", res.err, res.stdout)
	}
	if len(f.poolReqs) != 1 || f.poolReqs[0].Size != 2 {
		t.Errorf("pool requests %+v, want one of size 2", f.poolReqs)
	}
	for _, bad := range [][]string{{"pool", "my-env", "-1"}, {"pool", "my-env", "many"}, {"pool", "my-env"}} {
		if res := f.run(t, Template, "", bad...); res.err == nil {
			t.Errorf("template %v: no error", bad)
		}
	}
	if res := f.run(t, Template, "", "pool", "nope", "1"); res.err == nil {
		t.Error("template pool of an unknown template: no error")
	}
	if res := f.run(t, Snapshot, "", "rm", "snap1", "nope"); res.err == nil || !strings.Contains(res.err.Error(), "snapshot snap1") || !strings.Contains(res.err.Error(), "snapshot nope") || res.stdout != "" {
		t.Errorf("snapshot rm of a template's snapshot and an unknown one: %v, stdout %q", res.err, res.stdout)
	}
	if res := f.run(t, Template, "", "rm", "my-env"); res.err != nil || res.stdout != "my-env\n" {
		t.Fatalf("template rm: %v %q", res.err, res.stdout)
	}
	if res := f.run(t, Snapshot, "", "rm", "snap1", "snap2"); res.err != nil || res.stdout != "snap1\nsnap2\n" {
		t.Errorf("snapshot rm: %v, stdout %q", res.err, res.stdout)
	}
	if len(f.snapshots) != 0 {
		t.Errorf("%d snapshots left", len(f.snapshots))
	}
}
