package lifecycle

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nestbox.dev"
	"nestbox.dev/internal/capsulestate"
	"nestbox.dev/internal/events"
	"nestbox.dev/internal/metrics"
)

// The operations of nestbox_lifecycle_operation_duration_seconds.
const (
	opCreate  = "create"
	opPause   = "pause"
	opResume  = "resume"
	opDestroy = "destroy"
	opFork    = "fork"
)

// outcomeInterrupted is the outcome of work cut by the control plane's
// shutdown: the next reconcile resolves it.
const outcomeInterrupted = "interrupted"

// lifeMetrics are the lifecycle's metrics. Every label takes values from
// a fixed set (operations, errdefs codes, statuses, hosts of the fleet):
// no capsule ID is ever a label value.
type lifeMetrics struct {
	opDuration *prometheus.HistogramVec
	reconciles *prometheus.CounterVec
	repairs    *prometheus.CounterVec
	orphans    *prometheus.CounterVec
	eventLag   prometheus.Histogram
	eventGaps  prometheus.Counter
	publishErr prometheus.Counter
}

func newLifeMetrics(reg prometheus.Registerer) (*lifeMetrics, error) {
	m := &lifeMetrics{
		opDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nestbox_lifecycle_operation_duration_seconds",
			Help:    "Time the host took for a capsule's create, pause, resume, destroy or fork (the background work after the 202), by outcome: ok, an error code, or interrupted by shutdown.",
			Buckets: metrics.OpBuckets(),
		}, []string{"op", "outcome"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbox_reconcile_hosts_total",
			Help: "Reconcile passes over one host, by host and outcome: ok, unreachable (its agent did not list its sandboxes) or error (a repair failed).",
		}, []string{"host", "outcome"}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbox_reconcile_repairs_total",
			Help: "Capsule statuses the reconciler changed, by the status it found and the one it set (missing: its host stopped answering).",
		}, []string{"from", "to"}),
		orphans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbox_reconcile_orphans_destroyed_total",
			Help: "Sandboxes a host ran that the store had no live capsule for, which the reconciler destroyed, by host.",
		}, []string{"host"}),
		eventLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nestbox_events_lag_seconds",
			Help:    "Time from a capsule's status change to its event reaching this control plane's consumer of the event stream (in-process or Redis; across control planes it includes their clock difference).",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60},
		}),
		eventGaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nestbox_events_gaps_total",
			Help: "Times this control plane's consumer fell behind the event stream (or lost it) and events were dropped; each is followed by a re-read of the store.",
		}),
		publishErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nestbox_events_publish_errors_total",
			Help: "Capsule events the event stream refused (Redis down); the store already holds the change.",
		}),
	}
	return m, metrics.Register(reg, m.opDuration, m.reconciles, m.repairs, m.orphans, m.eventLag, m.eventGaps, m.publishErr)
}

// observeOp records one background operation that started at start and
// ended with err; interrupted says the control plane's shutdown cut it.
func (m *lifeMetrics) observeOp(op string, start time.Time, err error, interrupted bool) {
	outcome := metrics.Outcome(err)
	if interrupted {
		outcome = outcomeInterrupted
	}
	m.opDuration.WithLabelValues(op, outcome).Observe(time.Since(start).Seconds())
}

// observeReconcile records one pass over host with its error.
func (m *lifeMetrics) observeReconcile(host string, err error) {
	var lerr *listError
	switch {
	case err == nil:
		m.reconciles.WithLabelValues(host, "ok").Inc()
	case errors.As(err, &lerr):
		m.reconciles.WithLabelValues(host, "unreachable").Inc()
	default:
		m.reconciles.WithLabelValues(host, "error").Inc()
	}
}

// observeEvent records an event the consumer received at now.
func (m *lifeMetrics) observeEvent(ev nestbox.CapsuleEvent, now time.Time) {
	if ev.To == "" {
		m.eventGaps.Inc()
		return
	}
	if !ev.At.IsZero() {
		m.eventLag.Observe(max(now.Sub(ev.At), 0).Seconds())
	}
}

// newBacklogGauge reports ev's backlog at each scrape.
func newBacklogGauge(ev events.Stream) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "nestbox_events_backlog",
		Help: "Events this control plane's subscriptions to the event stream (waiters, cache eviction, the lag metric's) hold undelivered, together; one that falls a buffer (1024) behind loses the oldest (nestbox_events_gaps_total).",
	}, func() float64 { return float64(ev.Backlog()) })
}

// capsuleCollector reports the capsules of each host by status, read from
// the store at each scrape (one grouped count over an index). Every live
// status of every known host is reported, zero included, so that a series
// does not vanish when its count falls to zero.
type capsuleCollector struct {
	s    *Service
	desc *prometheus.Desc
}

func newCapsuleCollector(s *Service) *capsuleCollector {
	return &capsuleCollector{s: s, desc: prometheus.NewDesc("nestbox_capsules",
		"Capsules in each live status (every status but stopped and error), by host, as the store has them.",
		[]string{"host", "status"}, nil)}
}

func (c *capsuleCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect queries the store; a store that does not answer within 5 s is
// reported as this metric's error (the scrape gets the rest).
func (c *capsuleCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(c.s.ctx, 5*time.Second)
	defer cancel()
	statuses := capsulestate.LiveStatuses()
	counts, err := c.s.store.CountCapsules(ctx, statuses)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	type key struct {
		host   string
		status nestbox.Status
	}
	n := map[key]int{}
	for _, h := range c.s.hosts.All() {
		for _, st := range statuses {
			n[key{h.ID, st}] = 0
		}
	}
	for _, cnt := range counts {
		n[key{cnt.HostID, cnt.Status}] += cnt.Count
	}
	for k, v := range n {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(v), k.host, string(k.status))
	}
}
