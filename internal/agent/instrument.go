package agent

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"nestbox.dev/internal/metrics"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/agentpb/agentpbconnect"
)

// opOf is the operation of nestbox_agent_operation_duration_seconds that
// procedure does (demote has none: the agent starts it itself).
func opOf(procedure string) (string, bool) {
	switch procedure {
	case agentpbconnect.AgentCreateSandboxProcedure:
		return "create", true
	case agentpbconnect.AgentDestroySandboxProcedure:
		return "destroy", true
	case agentpbconnect.AgentPauseSandboxProcedure:
		return "pause", true
	case agentpbconnect.AgentResumeSandboxProcedure:
		return "resume", true
	case agentpbconnect.AgentForkSandboxProcedure:
		return "fork", true
	case agentpbconnect.AgentCreateSnapshotProcedure:
		return "snapshot", true
	}
	return "", false
}

// tierFilesystem is the tier label of a pause that kept only the disk.
const tierFilesystem = "filesystem"

// The reasons of an admission refusal (nestbox_agent_admission_refusals_total).
const (
	reasonMaxSandboxes = "max_sandboxes" // --max-sandboxes reached
	reasonMemoryLow    = "memory_reserve"
	reasonMemoryCommit = "memory_overcommit"
	reasonDiskLow      = "disk_reserve"
	reasonDiskCommit   = "disk_overcommit"
	reasonPoolBudget   = "pool_memory_budget" // a pooled sandbox beyond --pool-memory-mb
)

// refusal is an admission refusal and its reason; its message and kind
// (errdefs.ErrExhausted) are the wrapped error's.
type refusal struct {
	reason string
	err    error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func refuse(reason string, err error) error { return &refusal{reason: reason, err: err} }

// agentMetrics are the agent's metrics. Label values come from fixed
// sets (operations, tiers, steps, reasons, statuses, errdefs codes): no
// sandbox ID is ever one.
type agentMetrics struct {
	ops     *prometheus.HistogramVec
	steps   *prometheus.HistogramVec
	refused *prometheus.CounterVec
	claims  *prometheus.CounterVec
}

func newAgentMetrics(reg prometheus.Registerer, a *Agent) (*agentMetrics, error) {
	m := &agentMetrics{
		ops: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nestbox_agent_operation_duration_seconds",
			Help:    "Time the agent took for a sandbox's create, destroy, pause, resume, fork or demotion (a memory-tier pause moved to disk), by pause tier (memory, disk, filesystem; empty for the others) and outcome (ok or an error code).",
			Buckets: metrics.OpBuckets(),
		}, []string{"op", "tier", "outcome"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nestbox_agent_step_duration_seconds",
			Help:    "Time of each step of a pause, resume, demotion or fork (checkpoint, manifest, restore, health, ...), as the log line's steps= lists them.",
			Buckets: metrics.OpBuckets(),
		}, []string{"op", "step"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbox_agent_admission_refusals_total",
			Help: "Creates, resumes from disk, forks and warm-pool fills (op pool) this host refused for room, by operation and by what was short.",
		}, []string{"op", "reason"}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbox_agent_pool_claims_total",
			Help: "Creates that asked a warm pool for a sandbox, by result: hit (served from the pool), miss (none ready: a cold create), failed (a pooled sandbox that could not be claimed, removed).",
		}, []string{"result"}),
	}
	for _, r := range []string{"hit", "miss", "failed"} {
		m.claims.WithLabelValues(r)
	}
	return m, metrics.Register(reg, m.ops, m.steps, m.refused, m.claims, newHostCollector(a))
}

// observeOp records one operation that started at start and ended with
// err.
func (m *agentMetrics) observeOp(op, tier string, start time.Time, err error) {
	m.ops.WithLabelValues(op, tier, metrics.Outcome(err)).Observe(time.Since(start).Seconds())
}

// observeStep records a step of op that took d.
func (m *agentMetrics) observeStep(op, step string, d time.Duration) {
	m.steps.WithLabelValues(op, step).Observe(d.Seconds())
}

// observeRefusal counts err if it is an admission refusal.
func (m *agentMetrics) observeRefusal(op string, err error) {
	var r *refusal
	if errors.As(err, &r) {
		m.refused.WithLabelValues(op, r.reason).Inc()
	}
}

// interceptor times the lifecycle RPCs. The tier of a pause is what the
// agent answers (the grace period decides it); that of a resume is the
// one the sandbox was paused in, read before the call.
func (m *agentMetrics) interceptor(a *Agent) connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			op, ok := opOf(req.Spec().Procedure)
			if !ok {
				return next(ctx, req)
			}
			tier := ""
			switch msg := req.Any().(type) {
			case *agentpb.PauseSandboxRequest:
				if msg.GetFilesystemOnly() {
					tier = tierFilesystem
				}
			case *agentpb.ResumeSandboxRequest:
				tier = a.tierOf(msg.GetId())
			}
			start := time.Now()
			resp, err := next(ctx, req)
			if err == nil && resp != nil && tier == "" {
				if p, ok := resp.Any().(*agentpb.PauseSandboxResponse); ok {
					tier = p.GetSandbox().GetPauseTier()
				}
			}
			m.observeOp(op, tier, start, err)
			return resp, err
		}
	})
}

// tierOf is the pause tier label of sandbox id ("" if it is not paused
// or not known).
func (a *Agent) tierOf(id string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	sb, ok := a.sandboxes[id]
	switch {
	case !ok || sb.status != statusPaused:
		return ""
	case sb.fsOnly:
		return tierFilesystem
	}
	return sb.pauseTier
}

// hostCollector reports, at each scrape, the host's capacity and use as
// Ping does (one /proc/meminfo read and one statfs) and the sandboxes by
// status.
type hostCollector struct {
	a                         *Agent
	sandboxes, memory, disk   *prometheus.Desc
	cpus, vcpus, maxSandboxes *prometheus.Desc
}

func newHostCollector(a *Agent) *hostCollector {
	return &hostCollector{
		a:            a,
		sandboxes:    prometheus.NewDesc("nestbox_agent_sandboxes", "Sandboxes this agent holds, by status and, for paused ones, tier.", []string{"status", "tier"}, nil),
		memory:       prometheus.NewDesc("nestbox_agent_memory_bytes", "The host's memory as Ping reports it: total, available (MemAvailable), reserved (kept for the host), commit_limit (what the sandboxes' limits may add up to) and allocated (their limits added up).", []string{"kind"}, nil),
		disk:         prometheus.NewDesc("nestbox_agent_disk_bytes", "The data directory's file system as Ping reports it: total, available, reserved (kept free) and allocated (the sandboxes' writable-layer sizes added up).", []string{"kind"}, nil),
		cpus:         prometheus.NewDesc("nestbox_agent_cpus", "The host's CPUs.", nil, nil),
		vcpus:        prometheus.NewDesc("nestbox_agent_vcpus_allocated", "The vCPUs of this host's sandboxes, added up.", nil, nil),
		maxSandboxes: prometheus.NewDesc("nestbox_agent_max_sandboxes", "The most sandboxes this host runs (--max-sandboxes); 0 is no limit.", nil, nil),
	}
}

func (c *hostCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sandboxes, c.memory, c.disk, c.cpus, c.vcpus, c.maxSandboxes} {
		ch <- d
	}
}

func (c *hostCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ status, tier string }
	n := map[key]int{}
	for _, st := range []status{statusCreating, statusRunning, statusPausing, statusResuming, statusStopping, statusError, statusPooled} {
		n[key{string(st), ""}] = 0
	}
	for _, tier := range []string{tierMemory, tierDisk, tierFilesystem} {
		n[key{string(statusPaused), tier}] = 0
	}
	c.a.mu.Lock()
	for _, sb := range c.a.sandboxes {
		k := key{status: string(sb.status)}
		if sb.status == statusPaused {
			k.tier = sb.pauseTier
			if sb.fsOnly {
				k.tier = tierFilesystem
			}
		}
		n[k]++
	}
	c.a.mu.Unlock()
	for k, v := range n {
		ch <- prometheus.MustNewConstMetric(c.sandboxes, prometheus.GaugeValue, float64(v), k.status, k.tier)
	}

	p, err := c.a.ping(context.Background())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.memory, err)
		return
	}
	gauge := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	gauge(c.cpus, uint64(p.GetCpus()))
	gauge(c.vcpus, uint64(p.GetVcpusAllocated()))
	gauge(c.maxSandboxes, uint64(p.GetMaxSandboxes()))
	gauge(c.memory, p.GetMemoryTotalBytes(), "total")
	gauge(c.memory, p.GetMemoryAvailableBytes(), "available")
	gauge(c.memory, p.GetMemoryReservedBytes(), "reserved")
	gauge(c.memory, p.GetMemoryCommitLimitBytes(), "commit_limit")
	gauge(c.memory, p.GetMemoryAllocatedBytes(), "allocated")
	gauge(c.disk, p.GetDiskTotalBytes(), "total")
	gauge(c.disk, p.GetDiskAvailableBytes(), "available")
	gauge(c.disk, p.GetDiskReservedBytes(), "reserved")
	gauge(c.disk, p.GetDiskAllocatedBytes(), "allocated")
}
