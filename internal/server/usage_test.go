package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/lifecycle/fakehost"
	"nestbox.dev/internal/server"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/usage"
)

// usageNow is the usage tests' clock: the server's Now.
var usageNow = time.Date(2026, 12, 3, 15, 4, 5, 0, time.UTC)

// usageDay is n days before usageNow's day (0 is today).
func usageDay(n int) time.Time { return store.StartOfDay(usageNow).AddDate(0, 0, -n) }

// syntheticUsage is samples of team's capsules: on each of days (days
// before today), a few passes of two capsules with values that differ from
// pass to pass. Today's passes are before usageNow.
func syntheticUsage(team string, days ...int) []store.UsageSample {
	var out []store.UsageSample
	for _, d := range days {
		for pass := range 4 {
			for c := range 2 {
				n := d*31 + pass*7 + c
				out = append(out, store.UsageSample{
					TeamID: team, CapsuleID: fmt.Sprintf("%s-%d", team, c),
					At:      usageDay(d).Add(time.Duration(pass)*3*time.Hour + time.Duration(c)*time.Second),
					Seconds: 30, VCPUs: 1 + c, MemoryMB: 512 * (1 + c), DiskMB: 4096,
					CPUMillis: int64(5000 + n*13), MemoryUsedMB: int64(100 + n), DiskUsedMB: int64(700 + 2*n),
				})
			}
		}
	}
	return out
}

// handUsage computes from the inputs what the report must say of the days
// from from to to: the sums of their samples of team, in the API's units
// (integer sums first, converted once, as a total is).
func handUsage(samples []store.UsageSample, team string, from, to time.Time) (nestbox.UsageAmounts, int) {
	var vcpu, memMB, diskMB, cpuMS, memUsed, diskUsed int64
	caps := map[string]bool{}
	for _, u := range samples {
		if d := store.StartOfDay(u.At); u.TeamID != team || d.Before(from) || d.After(to) {
			continue
		}
		caps[u.CapsuleID+" "+store.StartOfDay(u.At).String()] = true
		s := int64(u.Seconds)
		vcpu += int64(u.VCPUs) * s
		memMB += int64(u.MemoryMB) * s
		diskMB += int64(u.DiskMB) * s
		cpuMS += u.CPUMillis
		memUsed += u.MemoryUsedMB * s
		diskUsed += u.DiskUsedMB * s
	}
	return nestbox.UsageAmounts{
		VCPUSeconds:          vcpu,
		MemoryGiBSeconds:     float64(memMB) / 1024,
		DiskGiBSeconds:       float64(diskMB) / 1024,
		CPUSecondsUsed:       float64(cpuMS) / 1000,
		MemoryUsedGiBSeconds: float64(memUsed) / 1024,
		DiskUsedGiBSeconds:   float64(diskUsed) / 1024,
	}, len(caps)
}

// usageEnv is a control plane at usageNow whose store holds team_a's
// synthetic samples of days 1 to 5 before today (day 4 without any: no
// capsule ran) and today, team_b's of day 2, rolled up by the usage
// worker at usageNow.
func usageEnv(t *testing.T) (*env, []store.UsageSample) {
	t.Helper()
	e := newEnv(t, withConfig(func(c *server.Config) { c.Now = func() time.Time { return usageNow } }))
	samples := append(syntheticUsage("team_a", 5, 3, 2, 1, 0), syntheticUsage("team_b", 2)...)
	if err := e.store.AddUsageSamples(t.Context(), samples); err != nil {
		t.Fatal(err)
	}
	w, err := usage.New(usage.Config{Store: e.store, Hosts: fakehost.Hosts{}, Now: func() time.Time { return usageNow }})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Rollup(t.Context()); err != nil {
		t.Fatal(err)
	}
	return e, samples
}

func (e *env) usage(t *testing.T, key, query string) nestbox.UsageReport {
	t.Helper()
	code, body := e.do(t, "GET", "/v1/capsules/usage"+query, key, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/capsules/usage%s: %d %s", query, code, body)
	}
	var r nestbox.UsageReport
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("GET /v1/capsules/usage%s: %v in %s", query, err, body)
	}
	return r
}

// TestUsageReport sends synthetic samples over several days through the
// rollup and checks that GET /v1/capsules/usage answers, per day and in
// total, what a hand computation from the same samples gives: rolled days
// from the daily table, today live from the samples.
func TestUsageReport(t *testing.T) {
	e, samples := usageEnv(t)
	if last, ok, err := e.store.LastUsageRollup(t.Context()); err != nil || !ok || !last.Equal(usageDay(1)) {
		t.Fatalf("the rollup rolled up to %s (%v, %v), want yesterday %s", last, ok, err, usageDay(1))
	}
	from, to := usageDay(6), usageDay(0)
	r := e.usage(t, e.keyA, "?from="+from.Format(time.DateOnly)+"&to="+to.Format(time.DateOnly))
	if r.From != from.Format(time.DateOnly) || r.To != to.Format(time.DateOnly) || len(r.Days) != 7 {
		t.Fatalf("report from %s to %s with %d days, want %s to %s, 7 days", r.From, r.To, len(r.Days), from.Format(time.DateOnly), to.Format(time.DateOnly))
	}
	for i, d := range r.Days {
		day := from.AddDate(0, 0, i)
		want, caps := handUsage(samples, "team_a", day, day)
		if d.Date != day.Format(time.DateOnly) || d.UsageAmounts != want || d.Capsules != caps {
			t.Errorf("day %d: %+v, want %s %+v with %d capsules", i, d, day.Format(time.DateOnly), want, caps)
		}
		if live := day.Equal(usageDay(0)); d.Live != live {
			t.Errorf("day %s: live %v, want %v (only today is computed at query time)", d.Date, d.Live, live)
		}
	}
	if total, _ := handUsage(samples, "team_a", from, to); r.Total != total {
		t.Errorf("total %+v, want %+v", r.Total, total)
	}
	if r.Total.VCPUSeconds == 0 || r.Days[6].VCPUSeconds == 0 {
		t.Fatalf("the synthetic samples made no usage: %+v", r)
	}

	// Today is live: a pass taken now shows at once.
	more := []store.UsageSample{{TeamID: "team_a", CapsuleID: "team_a-0", At: usageNow.Add(-time.Minute).Truncate(time.Second), Seconds: 30, VCPUs: 3, MemoryMB: 1024}}
	if err := e.store.AddUsageSamples(t.Context(), more); err != nil {
		t.Fatal(err)
	}
	today := e.usage(t, e.keyA, "?from="+to.Format(time.DateOnly)+"&to="+to.Format(time.DateOnly))
	want, _ := handUsage(append(samples, more...), "team_a", usageDay(0), usageDay(0))
	if len(today.Days) != 1 || today.Days[0].UsageAmounts != want || !today.Days[0].Live || today.Total != want {
		t.Errorf("today after one more pass: %+v, want %+v, live", today, want)
	}

	// The default range: the 30 days ending today.
	def := e.usage(t, e.keyA, "")
	if len(def.Days) != 30 || def.To != to.Format(time.DateOnly) || def.From != usageDay(29).Format(time.DateOnly) {
		t.Errorf("default range %s to %s, %d days; want the 30 days ending %s", def.From, def.To, len(def.Days), to.Format(time.DateOnly))
	}
}

// TestUsageRange checks the range's limits: at most 92 days, dates in
// YYYY-MM-DD, from not after to; every refusal a 400 with a stable code.
func TestUsageRange(t *testing.T) {
	e, _ := usageEnv(t)
	d := func(n int) string { return usageDay(n).Format(time.DateOnly) }
	if r := e.usage(t, e.keyA, "?from="+d(91)+"&to="+d(0)); len(r.Days) != 92 {
		t.Errorf("92 days: %d days answered", len(r.Days))
	}
	for _, q := range []string{
		"?from=" + d(92) + "&to=" + d(0), // 93 days
		"?from=" + d(400) + "&to=" + d(0),
		"?from=" + d(0) + "&to=" + d(1), // from after to
		"?from=2026-02-30",
		"?to=yesterday",
		"?from=" + d(1) + "T00:00:00Z",
	} {
		code, body := e.do(t, "GET", "/v1/capsules/usage"+q, e.keyA, nil)
		if code != http.StatusBadRequest || errorCode(t, body) != "invalid_argument" {
			t.Errorf("GET /v1/capsules/usage%s: %d %s, want 400 invalid_argument", q, code, body)
		}
	}
}

// TestUsageIsTeamScoped checks that a team sees only its own usage: team_b
// gets its one day, none of team_a's, and team_a none of team_b's.
func TestUsageIsTeamScoped(t *testing.T) {
	e, samples := usageEnv(t)
	q := "?from=" + usageDay(6).Format(time.DateOnly) + "&to=" + usageDay(0).Format(time.DateOnly)
	b := e.usage(t, e.keyB, q)
	want, _ := handUsage(samples, "team_b", usageDay(2), usageDay(2))
	if b.Total != want {
		t.Errorf("team_b's total %+v, want its own day's %+v", b.Total, want)
	}
	for _, d := range b.Days {
		if d.Date != usageDay(2).Format(time.DateOnly) && (d.UsageAmounts != nestbox.UsageAmounts{} || d.Capsules != 0) {
			t.Errorf("team_b sees usage on %s, a day only team_a used: %+v", d.Date, d)
		}
	}
	a := e.usage(t, e.keyA, q)
	aWant, _ := handUsage(samples, "team_a", usageDay(2), usageDay(2))
	if a.Days[4].Date != usageDay(2).Format(time.DateOnly) || a.Days[4].UsageAmounts != aWant {
		t.Errorf("team_a's day %s: %+v, want its own samples only %+v", usageDay(2).Format(time.DateOnly), a.Days[4], aWant)
	}
}
