package agent

import (
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"nestbox.dev/internal/metrics/metricstest"
	"nestbox.dev/internal/proto/agentpb"
)

// scrapeAgent GETs the agent's /metrics with the agent token and parses
// it.
func scrapeAgent(t *testing.T, ta *testAgent) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := authClient.Get(ta.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics with the agent token: %d", resp.StatusCode)
	}
	return metricstest.Parse(t, resp.Body)
}

// TestFakeMetrics creates, pauses (memory tier), resumes and destroys a
// sandbox in the fake world, has a create refused for room, and checks
// the series of each in the agent's /metrics: operation histograms by
// tier and outcome, pause steps, the refusal by reason, sandboxes by
// status and the host's capacity and use. /metrics needs the agent token.
func TestFakeMetrics(t *testing.T) {
	w := newFakeWorld(t)
	reg := prometheus.NewRegistry()
	ta := w.startAgent(t, func(c *Config) { c.Metrics = reg; c.MaxSandboxes = 1 })

	if code, body := httpGet(t, http.DefaultClient, ta.base+"/metrics"); code != http.StatusUnauthorized || strings.Contains(body, "nestbox_") {
		t.Fatalf("GET /metrics without the token: %d %.200s, want 401 and no metrics", code, body)
	}

	sb := ta.create(t, &agentpb.SandboxConfig{})
	if _, err := ta.tryCreate(&agentpb.SandboxConfig{}); err == nil {
		t.Fatal("a second create past MaxSandboxes 1 succeeded")
	}
	fams := scrapeAgent(t, ta)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"nestbox_agent_sandboxes", []string{"status", "running", "tier", ""}, 1},
		{"nestbox_agent_sandboxes", []string{"status", "paused", "tier", "memory"}, 0},
		{"nestbox_agent_memory_bytes", []string{"kind", "allocated"}, 256 << 20},
		{"nestbox_agent_vcpus_allocated", nil, 1},
		{"nestbox_agent_cpus", nil, float64(runtime.NumCPU())},
		{"nestbox_agent_max_sandboxes", nil, 1},
		{"nestbox_agent_operation_duration_seconds", []string{"op", "create", "tier", "", "outcome", "ok"}, 1},
		{"nestbox_agent_operation_duration_seconds", []string{"op", "create", "tier", "", "outcome", "resource_exhausted"}, 1},
		{"nestbox_agent_admission_refusals_total", []string{"op", "create", "reason", "max_sandboxes"}, 1},
	} {
		if got := metricstest.Value(t, fams, tc.name, tc.labels...); got != tc.want {
			t.Errorf("after a create and a refused one: %s%v = %g, want %g\n%s", tc.name, tc.labels, got, tc.want, metricstest.Describe(fams, tc.name))
		}
	}
	if got := metricstest.Value(t, fams, "nestbox_agent_disk_bytes", "kind", "total"); got <= 0 {
		t.Errorf("nestbox_agent_disk_bytes{kind=total} = %g, want the data dir's file system size", got)
	}

	if _, err := ta.pauseRPC(sb.Id, false); err != nil {
		t.Fatal(err)
	}
	fams = scrapeAgent(t, ta)
	if got := metricstest.Value(t, fams, "nestbox_agent_sandboxes", "status", "paused", "tier", "memory"); got != 1 {
		t.Errorf("paused in memory: nestbox_agent_sandboxes{status=paused,tier=memory} = %g, want 1", got)
	}
	if _, err := ta.resumeRPC(sb.Id); err != nil {
		t.Fatal(err)
	}
	ta.destroyRPC(t, sb.Id)

	fams = scrapeAgent(t, ta)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"nestbox_agent_operation_duration_seconds", []string{"op", "pause", "tier", "memory", "outcome", "ok"}, 1},
		{"nestbox_agent_operation_duration_seconds", []string{"op", "resume", "tier", "memory", "outcome", "ok"}, 1},
		{"nestbox_agent_operation_duration_seconds", []string{"op", "destroy", "tier", "", "outcome", "ok"}, 1},
		{"nestbox_agent_step_duration_seconds", []string{"op", "pause", "step", stepPausePrepare}, 1},
		{"nestbox_agent_sandboxes", []string{"status", "running", "tier", ""}, 0},
		{"nestbox_agent_memory_bytes", []string{"kind", "allocated"}, 0},
	} {
		if got := metricstest.Value(t, fams, tc.name, tc.labels...); got != tc.want {
			t.Errorf("after pause, resume and destroy: %s%v = %g, want %g\n%s", tc.name, tc.labels, got, tc.want, metricstest.Describe(fams, tc.name))
		}
	}
	for _, name := range []string{"nestbox_agent_operation_duration_seconds", "nestbox_agent_step_duration_seconds", "nestbox_agent_sandboxes"} {
		for _, l := range fams[name].GetMetric() {
			for _, p := range l.GetLabel() {
				if strings.Contains(p.GetValue(), sb.Id) {
					t.Errorf("%s has the sandbox ID in label %s=%q", name, p.GetName(), p.GetValue())
				}
			}
		}
	}
}
