package usage

import (
	"math"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"nestbox.dev"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/lifecycle/fakehost"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlite"
)

// hostList is a Hosts of several hosts.
type hostList []lifecycle.Host

func (l hostList) All() []lifecycle.Host { return l }

// clock is a fake clock that a test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// world is a store with a team, two fake hosts (h2 down) and running
// capsules on them.
type world struct {
	st     store.Store
	h1, h2 *fakehost.Agent
	clock  *clock
	caps   map[string]store.Capsule
	pct    map[string]float64 // the CPU % each h1 sandbox's sample says
}

var day0 = time.Date(2026, 5, 6, 0, 0, 0, 0, time.UTC)

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "nestbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &world{st: st, h1: fakehost.New(), h2: fakehost.New(), clock: &clock{t: day0.Add(10 * time.Hour)},
		caps: map[string]store.Capsule{}, pct: map[string]float64{}}
	for _, team := range []string{"ta", "tb"} {
		if err := st.CreateUser(ctx, store.User{ID: "u_" + team, CreatedAt: day0}); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateTeam(ctx, store.Team{ID: team, CreatedAt: day0}, "u_"+team); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		id, team, host string
		status         nestbox.Status
		vcpus, mem     int
		pct            float64
	}{
		{"c1", "ta", "h1", nestbox.StatusRunning, 1, 512, 50},
		{"c2", "ta", "h1", nestbox.StatusRunning, 2, 1024, 25},
		{"c3", "tb", "h1", nestbox.StatusRunning, 4, 2048, 10},
		{"c4", "ta", "h1", nestbox.StatusPaused, 1, 512, 0},  // paused: not counted
		{"c5", "tb", "h2", nestbox.StatusRunning, 1, 512, 0}, // its host is down
	} {
		cap := store.Capsule{Capsule: nestbox.Capsule{ID: c.id, TeamID: c.team, HostID: c.host, Status: c.status,
			VCPUs: c.vcpus, MemoryMB: c.mem, DiskMB: 2048, CreatedAt: day0}, UpdatedAt: day0, Generation: 1}
		if err := st.CreateCapsule(ctx, cap); err != nil {
			t.Fatal(err)
		}
		w.caps[c.id] = cap
		agent := w.h1
		if c.host == "h2" {
			agent = w.h2
		}
		if _, err := agent.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: &agentpb.SandboxConfig{
			Id: c.id, Vcpus: uint32(c.vcpus), MemoryMb: uint32(c.mem)}})); err != nil {
			t.Fatal(err)
		}
		if c.status == nestbox.StatusRunning && c.host == "h1" {
			w.pct[c.id] = c.pct
			agent.AddSample(c.id, &agentpb.SandboxMetrics{At: timestamppb.New(w.clock.now()), CpuUsedPct: c.pct, CpuCount: uint32(c.vcpus),
				MemoryUsedBytes: uint64(c.mem/4) << 20, MemoryTotalBytes: uint64(c.mem) << 20, DiskUsedBytes: 300 << 20, DiskTotalBytes: 2048 << 20})
		}
	}
	if _, err := w.h1.PauseSandbox(ctx, connect.NewRequest(&agentpb.PauseSandboxRequest{Id: "c4"})); err != nil {
		t.Fatal(err)
	}
	w.h2.SetDown(true)
	return w
}

func (w *world) worker(t *testing.T, edit func(*Config)) *Worker {
	t.Helper()
	cfg := Config{Store: w.st, Hosts: hostList{{ID: "h1", Agent: w.h1}, {ID: "h2", Agent: w.h2}}, Now: w.clock.now}
	if edit != nil {
		edit(&cfg)
	}
	wk, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return wk
}

// expected is the usage that samples of the h1 capsules accounting for
// secs seconds each make, per team, computed from the inputs as the
// sampler must.
func (w *world) expected(secs map[string]int) map[string]store.UsageTotals {
	out := map[string]store.UsageTotals{}
	for id, s := range secs {
		c := w.caps[id]
		sec := int64(s)
		out[c.TeamID] = out[c.TeamID].Add(store.UsageTotals{
			VCPUSeconds:         int64(c.VCPUs) * sec,
			MemoryMBSeconds:     int64(c.MemoryMB) * sec,
			DiskMBSeconds:       int64(c.DiskMB) * sec,
			CPUMillis:           int64(math.Round(w.pct[id] / 100 * float64(c.VCPUs) * float64(s) * 1000)),
			MemoryUsedMBSeconds: int64(c.MemoryMB/4) * sec,
			DiskUsedMBSeconds:   300 * sec,
		})
	}
	return out
}

func (w *world) live(t *testing.T, team string) store.UsageTotals {
	t.Helper()
	days, err := w.st.LiveUsage(t.Context(), team, day0, day0.AddDate(0, 0, 3))
	if err != nil {
		t.Fatal(err)
	}
	var sum store.UsageTotals
	for _, d := range days {
		sum = sum.Add(d.UsageTotals)
	}
	return sum
}

// TestSampler samples fake hosts: the running capsules of a host that
// answers, each for the time since the previous pass (at most two
// intervals, one for a first pass, and no more than it has been running),
// by allocation and by what the host measured.
func TestSampler(t *testing.T) {
	ctx := t.Context()
	w := newWorld(t)
	wk := w.worker(t, nil)
	secs := map[string]int{}
	pass := func(what string, want int, add map[string]int) {
		t.Helper()
		n, err := wk.Sample(ctx)
		if err != nil || n != want {
			t.Fatalf("%s: Sample = %d, %v; want %d samples", what, n, err, want)
		}
		for id, s := range add {
			secs[id] += s
		}
		exp := w.expected(secs)
		for _, team := range []string{"ta", "tb"} {
			if got := w.live(t, team); got != exp[team] {
				t.Errorf("%s: team %s's usage %+v, want %+v", what, team, got, exp[team])
			}
		}
	}
	pass("first pass", 3, map[string]int{"c1": 30, "c2": 30, "c3": 30})
	w.clock.add(45 * time.Second)
	pass("a late pass", 3, map[string]int{"c1": 45, "c2": 45, "c3": 45})
	w.clock.add(10 * time.Minute)
	pass("after a long gap", 3, map[string]int{"c1": 60, "c2": 60, "c3": 60})

	// c3 was paused and resumed 12 s ago: 12 s of this interval count.
	c3, err := w.st.UpdateCapsuleStatus(ctx, "c3", []nestbox.Status{nestbox.StatusRunning}, store.StatusUpdate{To: nestbox.StatusPaused, At: w.clock.now()})
	if err != nil {
		t.Fatal(err)
	}
	w.clock.add(18 * time.Second)
	if _, err := w.st.UpdateCapsuleStatus(ctx, "c3", []nestbox.Status{nestbox.StatusPaused}, store.StatusUpdate{To: nestbox.StatusRunning, At: w.clock.now(), Generation: c3.Generation}); err != nil {
		t.Fatal(err)
	}
	w.clock.add(12 * time.Second)
	pass("a capsule resumed within the interval", 3, map[string]int{"c1": 30, "c2": 30, "c3": 12})

	// The same second again (a retried pass) is not counted twice.
	wk.mu.Lock()
	wk.prev = time.Time{}
	wk.mu.Unlock()
	pass("a pass at the same second", 3, nil)

	// h1 down too: nothing is sampled, and nothing fails.
	w.h1.SetDown(true)
	w.clock.add(30 * time.Second)
	pass("every host down", 0, nil)
}

// TestSamplerLease checks that of two control planes only the lease holder
// samples, and that the other takes over, counting one interval, when the
// holder stops.
func TestSamplerLease(t *testing.T) {
	ctx := t.Context()
	w := newWorld(t)
	a := w.worker(t, func(c *Config) { c.Holder = "cp-a" })
	b := w.worker(t, func(c *Config) { c.Holder = "cp-b" })
	a.pass(ctx)
	b.pass(ctx)
	secs := map[string]int{"c1": 30, "c2": 30, "c3": 30}
	if got, want := w.live(t, "ta"), w.expected(secs)["ta"]; got != want {
		t.Fatalf("after a pass of each: team ta's usage %+v, want %+v (one pass, the holder's)", got, want)
	}
	// a stops; its lease (three intervals) runs out.
	w.clock.add(100 * time.Second)
	b.pass(ctx)
	for id := range secs {
		secs[id] += 30
	}
	if got, want := w.live(t, "ta"), w.expected(secs)["ta"]; got != want {
		t.Fatalf("after b took over: team ta's usage %+v, want %+v", got, want)
	}
}

// TestWorkerRollsUp runs the Worker's passes across midnight and after
// days down: each completed day is rolled once its day is over, and the
// report reads rolled days from the daily table and today live.
func TestWorkerRollsUp(t *testing.T) {
	ctx := t.Context()
	w := newWorld(t)
	wk := w.worker(t, func(c *Config) { c.RollupInterval = time.Hour })
	w.clock.t = day0.Add(23*time.Hour + 59*time.Minute + 40*time.Second)
	wk.pass(ctx) // day 0: 30 s each
	w.clock.add(30 * time.Second)
	wk.pass(ctx) // day 1, 00:00:10: 30 s each; day 0 not rolled (the last rollup was 30 s ago)
	if _, ok, _ := w.st.LastUsageRollup(ctx); ok {
		t.Fatal("a day was rolled before the rollup interval passed")
	}
	// Down for a day; the first pass after, on day 2, rolls days 0 and 1.
	w.clock.add(25 * time.Hour)
	wk.pass(ctx)
	last, ok, err := w.st.LastUsageRollup(ctx)
	if err != nil || !ok || !last.Equal(day0.AddDate(0, 0, 1)) {
		t.Fatalf("last day rolled: %s, %v, %v; want %s", last, ok, err, day0.AddDate(0, 0, 1))
	}
	// The passes rolled the completed hours with samples too.
	if h, ok, err := w.st.LastUsageHour(ctx); err != nil || !ok || !h.Equal(day0.AddDate(0, 0, 1)) {
		t.Errorf("last hour rolled: %s, %v, %v; want %s (day 1's first hour)", h, ok, err, day0.AddDate(0, 0, 1))
	}
	r, err := Report(ctx, w.st, "ta", day0, day0.AddDate(0, 0, 2), w.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	one := w.expected(map[string]int{"c1": 30, "c2": 30})["ta"]
	// Day 2: the pass after the gap counts two intervals, its most.
	after := w.expected(map[string]int{"c1": 60, "c2": 60})["ta"]
	want := []struct {
		u    store.UsageTotals
		live bool
	}{{one, false}, {one, false}, {after, true}}
	if len(r.Days) != 3 {
		t.Fatalf("report %+v, want 3 days", r)
	}
	var total store.UsageTotals
	for i, d := range r.Days {
		if d.UsageAmounts != Amounts(want[i].u) || d.Live != want[i].live || d.Capsules != 2 {
			t.Errorf("day %s: %+v, want %+v (live %v, 2 capsules)", d.Date, d, Amounts(want[i].u), want[i].live)
		}
		total = total.Add(want[i].u)
	}
	if r.Total != Amounts(total) {
		t.Errorf("total %+v, want %+v", r.Total, Amounts(total))
	}
}

// TestParseRange checks the report's range rules.
func TestParseRange(t *testing.T) {
	now := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	today := store.StartOfDay(now)
	for _, tc := range []struct {
		from, to   string
		start, end time.Time
		ok         bool
	}{
		{"", "", today.AddDate(0, 0, -29), today, true},
		{"2026-11-01", "2026-11-30", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), true},
		{"2026-12-03", "2026-12-03", today, today, true},
		{"", "2026-06-30", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC), true},
		{"2026-09-03", "2026-12-03", time.Date(2026, 9, 3, 0, 0, 0, 0, time.UTC), today, true}, // 92 days
		{"2026-09-02", "2026-12-03", time.Time{}, time.Time{}, false},                          // 93
		{"2026-12-04", "2026-12-03", time.Time{}, time.Time{}, false},
		{"2026-13-01", "", time.Time{}, time.Time{}, false},
		{"yesterday", "", time.Time{}, time.Time{}, false},
		{"", "2026-12-03T00:00:00Z", time.Time{}, time.Time{}, false},
	} {
		start, end, err := ParseRange(tc.from, tc.to, now)
		if tc.ok != (err == nil) || !start.Equal(tc.start) || !end.Equal(tc.end) {
			t.Errorf("ParseRange(%q, %q) = %s, %s, %v; want %s, %s, ok %v", tc.from, tc.to, start, end, err, tc.start, tc.end, tc.ok)
		}
	}
}

// TestReportLive checks which days a report marks live: today and later,
// and the past days it computed because they were not rolled yet and that
// have usage; a past day without usage is final whether rolled or not.
func TestReportLive(t *testing.T) {
	ctx := t.Context()
	w := newWorld(t)
	today := day0.AddDate(0, 0, 3)
	for _, d := range []time.Time{day0.AddDate(0, 0, 1), today} {
		if err := w.st.AddUsageSamples(ctx, []store.UsageSample{{TeamID: "ta", CapsuleID: "c1", At: d.Add(time.Hour), Seconds: 30, VCPUs: 2, MemoryMB: 512}}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Report(ctx, w.st, "ta", day0, today.AddDate(0, 0, 1), today.Add(5*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		live bool
		vcpu int64
	}{{false, 0}, {true, 60}, {false, 0}, {true, 60}, {true, 0}}
	if len(r.Days) != len(want) {
		t.Fatalf("%d days, want %d", len(r.Days), len(want))
	}
	for i, d := range r.Days {
		if d.Live != want[i].live || d.VCPUSeconds != want[i].vcpu {
			t.Errorf("day %s: live %v, %d vCPU-seconds; want %v, %d", d.Date, d.Live, d.VCPUSeconds, want[i].live, want[i].vcpu)
		}
	}
	if r.Total.VCPUSeconds != 120 {
		t.Errorf("total %d vCPU-seconds, want 120", r.Total.VCPUSeconds)
	}
}
