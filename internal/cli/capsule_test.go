package cli

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"nestbox.dev"
)

func TestCreatePrintsID(t *testing.T) {
	f := newFakeServer(t)
	res := f.run(t, Capsule, "", "create", "--template", "base", "--vcpus", "2", "--memory", "1024",
		"--timeout", "90s", "--env", "A=1", "--env", "B=x=y", "--metadata", "job=7", "--no-internet",
		"--allow-out", "10.0.0.0/8", "--deny-out", "1.2.3.4", "--private-ports")
	if res.err != nil {
		t.Fatalf("create: %v (stderr %q)", res.err, res.stderr)
	}
	if res.stdout != "cap1\n" {
		t.Errorf("stdout = %q, want the ID alone", res.stdout)
	}
	no := false
	want := nestbox.CreateCapsuleRequest{
		Template: "base", VCPUs: 2, MemoryMB: 1024, TimeoutSeconds: 90,
		EnvVars: map[string]string{"A": "1", "B": "x=y"}, Metadata: map[string]string{"job": "7"},
		Internet: &no, AllowOut: []string{"10.0.0.0/8"}, DenyOut: []string{"1.2.3.4"},
		PublicTraffic: &no,
	}
	if !reflect.DeepEqual(f.created[0], want) {
		t.Errorf("server got %+v, want %+v", f.created[0], want)
	}
	if f.capsules[0].Status != nestbox.StatusRunning {
		t.Errorf("create returned while the capsule was %s", f.capsules[0].Status)
	}
}

func TestCreateJSON(t *testing.T) {
	f := newFakeServer(t)
	res := f.run(t, Capsule, "", "create", "--json", "--metadata", "a=b")
	if res.err != nil {
		t.Fatal(res.err)
	}
	var cp nestbox.Capsule
	if err := json.Unmarshal([]byte(res.stdout), &cp); err != nil {
		t.Fatalf("stdout %q is not a capsule: %v", res.stdout, err)
	}
	if cp.ID != "cap1" || cp.Status != nestbox.StatusRunning || cp.Metadata["a"] != "b" {
		t.Errorf("capsule = %+v", cp)
	}
}

func TestCreateNoWait(t *testing.T) {
	f := newFakeServer(t)
	res := f.run(t, Capsule, "", "create", "--no-wait")
	if res.err != nil || res.stdout != "cap1\n" {
		t.Fatalf("create --no-wait: %q, %v", res.stdout, res.err)
	}
	if f.capsules[0].Status != nestbox.StatusStarting {
		t.Errorf("--no-wait waited: capsule is %s", f.capsules[0].Status)
	}
}

func TestCreateFails(t *testing.T) {
	f := newFakeServer(t)
	res := f.run(t, Capsule, "", "create", "--template", "broken")
	var ce *nestbox.CapsuleError
	if !errors.As(res.err, &ce) || !strings.Contains(res.err.Error(), "cap1") || !strings.Contains(res.err.Error(), "has no init") {
		t.Errorf("err = %v, want the capsule's error with its ID", res.err)
	}
	if res.stdout != "" {
		t.Errorf("stdout = %q, want nothing", res.stdout)
	}
}

func TestErrorsCarryTheCode(t *testing.T) {
	f := newFakeServer(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"get", "abc"}, "capsule abc not found (not_found)"},
		{[]string{"create", "--template", "missing"}, "template missing not found (not_found)"},
		{[]string{"rm", "abc"}, "capsule abc not found (not_found)"},
		{[]string{"get", "--api-key", "nbx_wrong", "abc"}, "invalid API key (unauthenticated)"},
	}
	for _, tt := range tests {
		res := f.run(t, Capsule, "", tt.args...)
		if res.err == nil || res.err.Error() != tt.want {
			t.Errorf("capsule %q: err = %v, want %q", tt.args, res.err, tt.want)
		}
	}
}

func TestList(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("capA", map[string]string{"team": "x", "job": "1"})
	f.addCapsule("capB", nil)
	f.addCapsule("capC", map[string]string{"team": "x"})

	res := f.run(t, Capsule, "", "ls")
	if res.err != nil {
		t.Fatal(res.err)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 4 {
		t.Fatalf("ls printed %d lines, want a header and 3 rows:\n%s", len(lines), res.stdout)
	}
	if h := strings.Fields(lines[0]); !reflect.DeepEqual(h, []string{"ID", "TEMPLATE", "STATUS", "CREATED", "EXPIRES", "METADATA"}) {
		t.Errorf("header = %q", h)
	}
	if row := strings.Fields(lines[1]); !reflect.DeepEqual(row, []string{"capA", "base", "running", "3m", "ago", "in", "1m", "job=1,team=x"}) {
		t.Errorf("row = %q", row)
	}
	if row := strings.Fields(lines[2]); row[len(row)-1] != "-" {
		t.Errorf("row without metadata = %q, want - last", row)
	}

	res = f.run(t, Capsule, "", "ls", "--json", "--metadata", "team=x", "--status", "running")
	if res.err != nil {
		t.Fatal(res.err)
	}
	var l nestbox.CapsuleList
	if err := json.Unmarshal([]byte(res.stdout), &l); err != nil {
		t.Fatalf("ls --json printed %q: %v", res.stdout, err)
	}
	if len(l.Capsules) != 2 || l.Capsules[0].ID != "capA" || l.Capsules[1].ID != "capC" {
		t.Errorf("ls --json = %+v", l)
	}
	if q := f.listQueries[len(f.listQueries)-1]; !strings.Contains(q, "metadata.team=x") || !strings.Contains(q, "status=running") {
		t.Errorf("query %q lacks the filters", q)
	}
}

func TestListPages(t *testing.T) {
	f := newFakeServer(t)
	for _, id := range []string{"c1", "c2", "c3"} {
		f.addCapsule(id, nil)
	}
	res := f.run(t, Capsule, "", "ls", "--limit", "2", "--json")
	var l nestbox.CapsuleList
	if err := json.Unmarshal([]byte(res.stdout), &l); err != nil || len(l.Capsules) != 2 || l.NextCursor == "" {
		t.Errorf("one page: %+v, %v", l, err)
	}
	res = f.run(t, Capsule, "", "ls", "--limit", "2")
	if !strings.Contains(res.stderr, "--all") {
		t.Errorf("ls with more pages said nothing on stderr: %q", res.stderr)
	}
	res = f.run(t, Capsule, "", "ls", "--limit", "2", "--all", "--json")
	l = nestbox.CapsuleList{}
	if err := json.Unmarshal([]byte(res.stdout), &l); err != nil || len(l.Capsules) != 3 || l.NextCursor != "" {
		t.Errorf("--all: %+v, %v", l, err)
	}
}

func TestGetRemoveLogsMetrics(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("capA", map[string]string{"k": "v"})
	f.addCapsule("capB", nil)

	res := f.run(t, Capsule, "", "get", "capA")
	if res.err != nil || !strings.Contains(res.stdout, "capA") || !strings.Contains(res.stdout, "k=v") {
		t.Errorf("get: %v\n%s", res.err, res.stdout)
	}
	res = f.run(t, Capsule, "", "get", "capA", "--json") // a flag after the ID
	if res.err != nil || !json.Valid([]byte(res.stdout)) {
		t.Errorf("get --json: %v\n%s", res.err, res.stdout)
	}
	res = f.run(t, Capsule, "", "logs", "capA")
	if res.err != nil || !strings.Contains(res.stdout, "starting") || !strings.Contains(res.stdout, "started") {
		t.Errorf("logs: %v\n%s", res.err, res.stdout)
	}
	res = f.run(t, Capsule, "", "metrics", "capA")
	if res.err != nil || !strings.Contains(res.stdout, "12.5% of 2 vCPU") || !strings.Contains(res.stdout, "100.0 MiB / 512.0 MiB") {
		t.Errorf("metrics: %v\n%s", res.err, res.stdout)
	}

	res = f.run(t, Capsule, "", "rm", "capA", "nope", "capB")
	if res.stdout != "capA\ncapB\n" {
		t.Errorf("rm printed %q, want the removed IDs", res.stdout)
	}
	if !errors.Is(res.err, nestbox.ErrNotFound) {
		t.Errorf("rm err = %v, want the not-found of nope", res.err)
	}
	for _, c := range f.capsules {
		if c.Status != nestbox.StatusStopped {
			t.Errorf("capsule %s is %s after rm, want stopped", c.ID, c.Status)
		}
	}
}

// TestCreateRefusesZeroAndBadValues: a flag given as 0, which the API
// would take for "the default", is refused before anything is sent, and
// so is a value the server would misread.
func TestCreateRefusesZeroAndBadValues(t *testing.T) {
	f := newFakeServer(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--timeout", "0"}, "0 does not mean"},
		{[]string{"--timeout", "300"}, "give a unit, e.g. 300s"},
		{[]string{"--timeout", "-1m"}, "positive"},
		{[]string{"--vcpus", "0"}, "at least 1"},
		{[]string{"--vcpus", "-3"}, "at least 1"},
		{[]string{"--memory", "0"}, "at least 1 MiB"},
		{[]string{"--memory", "1.5Gi"}, "whole number"},
		{[]string{"--disk", "0"}, "at least 1 MiB"},
	} {
		res := f.run(t, Capsule, "", append([]string{"create"}, tc.args...)...)
		if res.err == nil || !strings.Contains(res.err.Error(), tc.want) || !strings.Contains(res.err.Error(), tc.args[0][1:]) {
			t.Errorf("create %q: err %v, want one naming %s and saying %q", tc.args, res.err, tc.args[0], tc.want)
		}
	}
	if len(f.created) != 0 {
		t.Errorf("refused flags still sent %d creates", len(f.created))
	}
}

// TestCreateSaysWhatWasUsed: sizes with units reach the API in MiB, and
// create says on stderr what the server resolved (defaults included),
// while stdout stays the ID alone.
func TestCreateSaysWhatWasUsed(t *testing.T) {
	f := newFakeServer(t)
	res := f.run(t, Capsule, "", "create", "--memory", "2Gi", "--disk", "10Gi", "--timeout", "90s")
	if res.err != nil {
		t.Fatal(res.err)
	}
	if got := f.created[0]; got.MemoryMB != 2048 || got.DiskMB != 10240 || got.TimeoutSeconds != 90 {
		t.Errorf("server got %+v, want 2048 MiB memory, 10240 MiB disk, 90 s", got)
	}
	if res.stdout != "cap1\n" {
		t.Errorf("stdout %q, want the ID alone", res.stdout)
	}
	for _, want := range []string{"cap1: base, 1 vCPU, 2.0 GiB memory, 10.0 GiB disk", "destroyed at", "(in 1m30s)"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr %q does not say %q", res.stderr, want)
		}
	}

	// Nothing given: the server's defaults, and the disk the host chose.
	res = f.run(t, Capsule, "", "create")
	if res.err != nil {
		t.Fatal(res.err)
	}
	if want := "cap2: base, 1 vCPU, 512.0 MiB memory, 5.0 GiB disk, destroyed at"; !strings.Contains(res.stderr, want) || !strings.Contains(res.stderr, "(in 5m0s)") {
		t.Errorf("stderr %q, want %q ... (in 5m0s)", res.stderr, want)
	}
	if g := f.created[1]; g.VCPUs != 0 || g.MemoryMB != 0 || g.DiskMB != 0 || g.TimeoutSeconds != 0 {
		t.Errorf("flags left out were sent as %+v, want zero (the server's defaults)", g)
	}
}

// TestSizesAgree: get, ls --json and metrics show a capsule's disk and
// memory as the same numbers (the platform reports the capsule's recorded
// sizes as the metrics' totals).
func TestSizesAgree(t *testing.T) {
	f := newFakeServer(t)
	res := f.run(t, Capsule, "", "create")
	if res.err != nil {
		t.Fatal(res.err)
	}
	get := f.run(t, Capsule, "", "get", "cap1")
	metrics := f.run(t, Capsule, "", "metrics", "cap1")
	ls := f.run(t, Capsule, "", "ls", "--json")
	if get.err != nil || metrics.err != nil || ls.err != nil {
		t.Fatal(get.err, metrics.err, ls.err)
	}
	if !strings.Contains(get.stdout, "512.0 MiB memory, 5.0 GiB disk") || strings.Contains(get.stdout, "0 MiB disk") {
		t.Errorf("get:\n%s", get.stdout)
	}
	if !strings.Contains(metrics.stdout, "/ 5.0 GiB") || !strings.Contains(metrics.stdout, "/ 512.0 MiB") {
		t.Errorf("metrics:\n%s", metrics.stdout)
	}
	var list nestbox.CapsuleList
	if err := json.Unmarshal([]byte(ls.stdout), &list); err != nil || len(list.Capsules) != 1 || list.Capsules[0].DiskMB != 5120 {
		t.Errorf("ls --json: %s, %v", ls.stdout, err)
	}
}
