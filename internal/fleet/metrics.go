package fleet

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nestbox.dev/internal/store"
)

// hostStates are the states nestbox_fleet_hosts reports, every one of
// them even at zero.
var hostStates = []store.HostState{store.HostActive, store.HostCordoned, store.HostDraining}

// collector reports the fleet's hosts at each scrape, from the Registry's
// host list (read from the store at most once a second, shared with
// scheduling).
type collector struct {
	r                *Registry
	hosts, heartbeat *prometheus.Desc
}

// Collector returns the Prometheus collector of the fleet's hosts:
// nestbox_fleet_hosts (hosts by state and reachability) and
// nestbox_fleet_host_heartbeat_age_seconds (per host, the time since its
// last heartbeat was recorded). Register it once per Registry.
func (r *Registry) Collector() prometheus.Collector {
	return &collector{r: r,
		hosts: prometheus.NewDesc("nestbox_fleet_hosts",
			"The fleet's registered hosts by scheduling state (active, cordoned, draining) and reachable (false: the host monitor found its heartbeats stopped).",
			[]string{"state", "reachable"}, nil),
		heartbeat: prometheus.NewDesc("nestbox_fleet_host_heartbeat_age_seconds",
			"Seconds since each host's last recorded heartbeat; above three heartbeat intervals the host monitor marks it unreachable.",
			[]string{"host"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.hosts
	ch <- c.heartbeat
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type key struct {
		state     store.HostState
		reachable bool
	}
	n := map[key]int{}
	for _, st := range hostStates {
		n[key{st, true}], n[key{st, false}] = 0, 0
	}
	now := c.r.cfg.Now()
	for _, h := range c.r.snapshot(ctx) {
		n[key{h.State, !h.Unreachable}]++
		if !h.LastSeen.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.heartbeat, prometheus.GaugeValue, max(now.Sub(h.LastSeen).Seconds(), 0), h.ID)
		}
	}
	for k, v := range n {
		ch <- prometheus.MustNewConstMetric(c.hosts, prometheus.GaugeValue, float64(v), string(k.state), strconv.FormatBool(k.reachable))
	}
}
