package agent

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"nestbox.dev/internal/proto/agentpb"
)

// scaleN is how many sandboxes TestScale runs at once.
const scaleN = 50

// TestScale creates scaleN small sandboxes one after another and checks
// that every one answers a command, that the agent's external work per
// create (runsc processes, nft transactions and the rules and elements in
// them, address slots looked at, dumps of the host's addresses, layer
// stats) is no more for the last create than for the first ones, and that
// destroying all of them leaves the host as it was. It asserts no time:
// the create rate at scale is BenchmarkDensity's.
func TestScale(t *testing.T) {
	h := newTestHost(t)
	// The background loops, which visit every sandbox, are off: what
	// is counted is the creates' own work.
	ta := h.startAgent(t, "", func(c *Config) {
		c.MonitorInterval = time.Hour
		c.SampleInterval = time.Hour
	})
	small := func() *agentpb.SandboxConfig {
		return &agentpb.SandboxConfig{MemoryMb: 64, DiskBytes: 64 << 20, AccessToken: "scale-token", TimeoutSeconds: 600}
	}
	ta.destroyRPC(t, ta.create(t, small()).Id) // builds the template
	assertClean(t, h.dataDir)
	baseline := hostSnapshot(h.dataDir)

	var ids []string
	var per []opCounts
	for i := range scaleN {
		before := ta.opCounts()
		sb := ta.create(t, small())
		per = append(per, ta.opCounts().sub(before))
		ids = append(ids, sb.Id)
		if i == 0 || i == scaleN-1 {
			t.Logf("create %d: %s", i+1, per[i])
		}
	}

	// Every sandbox works, reached through the agent's proxy.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	errs := make([]error, len(ids))
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			want := fmt.Sprintf("capsule %d", i)
			out, err := shOK(ta.process(id, "scale-token", ""), "echo capsule "+fmt.Sprint(i))
			if err == nil && strings.TrimSpace(out) != want {
				err = fmt.Errorf("output %q, want %q", out, want)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("sandbox %d (%s): %v", i, ids[i], err)
		}
	}

	// The work of the last creates against the first few (the first is
	// left out: it may find state of the template build). Of the last
	// five, each count's least: other test packages run at the same time
	// and change the host's addresses (their agents' sandboxes), which
	// makes a create re-read them now and then (see network's
	// addrWatch); a cost that grows with the sandboxes shows in all five.
	first := per[1:4]
	last := cheapest(per[scaleN-5:])
	for _, cmd := range slices.Sorted(maps.Keys(last.runsc)) {
		if most := maxOf(first, func(c opCounts) int64 { return c.runsc[cmd] }); last.runsc[cmd] > most {
			t.Errorf("runsc %s: %d in the cheapest of the last 5 creates, at most %d at creates 2-4", cmd, last.runsc[cmd], most)
		}
	}
	for _, f := range []struct {
		name string
		get  func(opCounts) int64
	}{
		{"nft transactions", func(c opCounts) int64 { return c.net.NftBatches }},
		{"nft rules, chains and elements", func(c opCounts) int64 { return c.net.NftObjects }},
		{"address slots looked at", func(c opCounts) int64 { return c.net.SlotsScanned }},
		{"host addresses read", func(c opCounts) int64 { return c.net.AddrsRead }},
		{"layer stats", func(c opCounts) int64 { return c.layerStats }},
	} {
		if most := maxOf(first, f.get); f.get(last) > most {
			t.Errorf("%s: %d in the cheapest of the last 5 creates, at most %d at creates 2-4", f.name, f.get(last), most)
		}
	}
	if last.net.NftBatches == 0 || last.net.NftObjects == 0 || last.net.SlotsScanned == 0 {
		t.Errorf("create %d: %s: the network's counters do not count", scaleN, last)
	}
	// A dump of the host's addresses reads every sandbox's host end: a
	// create must not need one. Only changes outside this agent's pool
	// cause one (other packages' tests make them), so they are logged,
	// and the cheapest of the last creates above reads none.
	var dumps int64
	for _, c := range per[1:] {
		dumps += c.net.AddrDumps
	}
	t.Logf("%d dumps of the host's addresses in %d creates (changes made outside this agent)", dumps, scaleN-1)
	if last.net.AddrDumps != 0 {
		t.Errorf("each of the last 5 creates dumped the host's addresses")
	}
	if n := last.runsc["run"]; n != 1 {
		t.Errorf("create %d started %d runsc run, want 1", scaleN, n)
	}

	for _, id := range ids {
		ta.destroyRPC(t, id)
	}
	assertClean(t, h.dataDir)
	if after := hostSnapshot(h.dataDir); !slices.Equal(after, baseline) {
		t.Errorf("the host is not as it was:\n before %v\n after  %v", baseline, after)
	}
}

// cheapest is, count by count, the least of cs.
func cheapest(cs []opCounts) opCounts {
	out := cs[0]
	out.runsc = maps.Clone(cs[0].runsc)
	for _, c := range cs[1:] {
		for k, v := range c.runsc {
			out.runsc[k] = min(out.runsc[k], v)
		}
		for k := range out.runsc {
			if _, ok := c.runsc[k]; !ok {
				out.runsc[k] = 0
			}
		}
		n := &out.net
		n.AddrDumps, n.AddrsRead = min(n.AddrDumps, c.net.AddrDumps), min(n.AddrsRead, c.net.AddrsRead)
		n.NftBatches, n.NftObjects = min(n.NftBatches, c.net.NftBatches), min(n.NftObjects, c.net.NftObjects)
		n.SlotsScanned = min(n.SlotsScanned, c.net.SlotsScanned)
		out.layerStats = min(out.layerStats, c.layerStats)
	}
	return out
}

func maxOf(cs []opCounts, get func(opCounts) int64) int64 {
	var m int64
	for _, c := range cs {
		m = max(m, get(c))
	}
	return m
}

// String is for test logs.
func (c opCounts) String() string {
	return fmt.Sprintf("runsc %v, net %+v, layer stats %d", c.runsc, c.net, c.layerStats)
}
