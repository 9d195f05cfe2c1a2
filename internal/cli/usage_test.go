package cli

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"nestbox.dev"
)

func TestUsage(t *testing.T) {
	f := newFakeServer(t)
	f.usage = nestbox.UsageReport{From: "2026-12-01", To: "2026-12-03", Days: []nestbox.UsageDay{
		{Date: "2026-12-01", Capsules: 2, UsageAmounts: nestbox.UsageAmounts{VCPUSeconds: 7200, MemoryGiBSeconds: 3600, DiskGiBSeconds: 18000, CPUSecondsUsed: 900}},
		{Date: "2026-12-02"},
		{Date: "2026-12-03", Capsules: 1, Live: true, UsageAmounts: nestbox.UsageAmounts{VCPUSeconds: 3600, MemoryGiBSeconds: 1800, DiskGiBSeconds: 9000, CPUSecondsUsed: 36}},
	}, Total: nestbox.UsageAmounts{VCPUSeconds: 10800, MemoryGiBSeconds: 5400, DiskGiBSeconds: 27000, CPUSecondsUsed: 936}}

	res := f.run(t, Usage, "", "--from", "2026-12-01", "--to", "2026-12-03")
	if res.err != nil {
		t.Fatal(res.err)
	}
	if got := f.usageQueries; len(got) != 1 || got[0] != "from=2026-12-01&to=2026-12-03" {
		t.Errorf("queries sent: %q", got)
	}
	lines := strings.Split(strings.TrimRight(res.stdout, "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("printed %d lines, want a header, 3 days, the total and the live note:\n%s", len(lines), res.stdout)
	}
	for i, want := range [][]string{
		{"DATE", "CAPSULES", "VCPU-H", "MEMORY GIB-H", "DISK GIB-H", "CPU-H USED"},
		{"2026-12-01 ", "2", "2.00", "1.00", "5.00", "0.25"},
		{"2026-12-02 ", "0", "0.00"},
		{"2026-12-03*", "1", "1.00", "0.50", "2.50", "0.01"},
		{"TOTAL", "3.00", "1.50", "7.50", "0.26"},
		{"computed from the samples now"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	// The bars: the busiest day's is the full width, one of half the
	// vCPU-hours half of it, a day without use none.
	for i, blocks := range map[int]int{1: usageBarWidth, 2: 0, 3: usageBarWidth / 2} {
		if n := strings.Count(lines[i], "█"); n != blocks {
			t.Errorf("line %d %q has a bar of %d cells, want %d", i, lines[i], n, blocks)
		}
	}

	res = f.run(t, Usage, "", "--json")
	if res.err != nil {
		t.Fatal(res.err)
	}
	var got nestbox.UsageReport
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil || !reflect.DeepEqual(got, f.usage) {
		t.Errorf("--json printed %s (%v), want %+v", res.stdout, err, f.usage)
	}
	if q := f.usageQueries[len(f.usageQueries)-1]; q != "" {
		t.Errorf("without --from and --to the query is %q, want none (the server's default range)", q)
	}

	before := len(f.usageQueries)
	if res := f.run(t, Usage, "", "--from", "12/01/2026"); res.err == nil || !strings.Contains(res.err.Error(), "YYYY-MM-DD") {
		t.Errorf("a bad --from: %v", res.err)
	}
	if len(f.usageQueries) != before {
		t.Error("a bad --from was sent to the server")
	}
	if res := f.run(t, Usage, "", "--from", "2026-12-05", "--to", "2026-12-01"); res.err == nil || !strings.Contains(res.err.Error(), "after") {
		t.Errorf("from after to: %v, want the server's error", res.err)
	}
}

func TestBar(t *testing.T) {
	for _, tc := range []struct {
		v, most int64
		want    string
	}{
		{0, 10, " "},
		{10, 10, strings.Repeat("█", 4)},
		{5, 10, "██"},
		{1, 1000, "▏"}, // any use shows
		{3, 8, "█▌"},
	} {
		if got := bar(tc.v, tc.most, 4); got != tc.want {
			t.Errorf("bar(%d, %d, 4) = %q, want %q", tc.v, tc.most, got, tc.want)
		}
	}
}
