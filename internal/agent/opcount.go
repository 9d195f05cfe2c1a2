package agent

import (
	"maps"

	"nestbox.dev/internal/network"
)

// opCounts are the agent's external operations so far: runsc processes by
// command, the network's kernel work and the stats of writable layers.
// Tests and benchmarks compare two readings to check that one create does
// not do more of them with every sandbox already running. A driver or
// network that does not count reports zeros.
type opCounts struct {
	runsc      map[string]int64
	net        network.Ops
	layerStats int64
}

func (a *Agent) opCounts() opCounts {
	c := opCounts{runsc: map[string]int64{}, layerStats: a.layerStats.Load()}
	if d, ok := a.driver.(interface{ Invocations() map[string]int64 }); ok {
		c.runsc = d.Invocations()
	}
	if n, ok := a.net.(interface{ Ops() network.Ops }); ok {
		c.net = n.Ops()
	}
	return c
}

// sub is the work done between before and c.
func (c opCounts) sub(before opCounts) opCounts {
	d := opCounts{runsc: maps.Clone(c.runsc), net: c.net.Sub(before.net), layerStats: c.layerStats - before.layerStats}
	for k, v := range before.runsc {
		d.runsc[k] -= v
	}
	return d
}
