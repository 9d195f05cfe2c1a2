package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"nestbox.dev"
	"nestbox.dev/internal/metrics"
	"nestbox.dev/internal/metrics/metricstest"
)

// TestMetricsListenFlag checks --metrics-listen: off unless given, and
// what serveMetrics does with it (serves GET /metrics there until the
// context ends; a bad address fails at once).
func TestMetricsListenFlag(t *testing.T) {
	runsc := filepath.Join(t.TempDir(), "runsc")
	os.WriteFile(runsc, nil, 0o755)
	t.Setenv("NESTBOX_RUNSC", runsc)
	t.Setenv("NESTBOX_METRICS_LISTEN", "")
	if aa, err := parseAgentArgs(nil, &bytes.Buffer{}); err != nil || aa.metricsListen != "" {
		t.Fatalf("agent without --metrics-listen: %q, %v; want none", aa.metricsListen, err)
	}
	aa, err := parseAgentArgs([]string{"--metrics-listen", "127.0.0.1:0"}, &bytes.Buffer{})
	if err != nil || aa.metricsListen != "127.0.0.1:0" {
		t.Fatalf("agent --metrics-listen 127.0.0.1:0: %q, %v", aa.metricsListen, err)
	}
	if cfg, err := parseUpFlags([]string{"--metrics-listen", "127.0.0.1:9464"}, &bytes.Buffer{}); err != nil || cfg.metricsListen != "127.0.0.1:9464" {
		t.Fatalf("up --metrics-listen: %q, %v", cfg.metricsListen, err)
	}

	reg := metrics.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "nestbox_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if err := serveMetrics(ctx, &wg, "127.0.0.1:bad", reg, log); err == nil {
		t.Error("serveMetrics on a bad address: no error")
	}
	// A free port, found by listening once.
	var logs bytes.Buffer
	if err := serveMetrics(ctx, &wg, "127.0.0.1:0", reg, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(logs.String(), "addr=")
	if !ok {
		t.Fatalf("serveMetrics logged no address: %q", logs.String())
	}
	url := "http://" + strings.Fields(rest)[0] + "/metrics"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "nestbox_test_total 3") || !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("GET %s: %d %.300s", url, resp.StatusCode, body)
	}
	cancel()
	wg.Wait()
	if _, err := http.Get(url); err == nil {
		t.Errorf("GET %s after the context ended: still served", url)
	}
}

// TestUpMetrics runs `nestbox up --metrics-listen`, creates and destroys
// a capsule, and finds the control plane's and the agent's series on
// that one listener, without a credential.
func TestUpMetrics(t *testing.T) {
	addr := freeAddr(t)
	p := startUp(t, "--metrics-listen", addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := p.client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal"})
	if err != nil {
		t.Fatal(err)
	}
	if final, err := c.Kill(ctx); err != nil || final.Status != nestbox.StatusStopped {
		t.Fatalf("kill: %+v, %v", final, err)
	}
	checkScrapes(t, "http://"+addr, "http://"+addr, "")
}

// checkScrapes scrapes a control plane's metrics and its agent's (with
// agentToken if not "", as docs/fleet.md sets Prometheus up for an
// agent's own listener) after one create and one destroy, and checks the
// series that moved.
func checkScrapes(t *testing.T, serverURL, agentURL, agentToken string) {
	t.Helper()
	tok := agentToken
	scrape := func(url, token string) map[string]*dto.MetricFamily {
		req, err := http.NewRequest("GET", url+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s/metrics: %d", url, resp.StatusCode)
		}
		return metricstest.Parse(t, resp.Body)
	}
	server, agentFams := scrape(serverURL, ""), scrape(agentURL, tok)
	for _, tc := range []struct {
		what   string
		fams   map[string]*dto.MetricFamily
		name   string
		labels []string
	}{
		{"server", server, "nestbox_http_requests_total", []string{"route", "POST /v1/capsules", "code", "2xx"}},
		{"server", server, "nestbox_lifecycle_operation_duration_seconds", []string{"op", "create", "outcome", "ok"}},
		{"server", server, "nestbox_lifecycle_operation_duration_seconds", []string{"op", "destroy", "outcome", "ok"}},
		{"server", server, "nestbox_events_lag_seconds", nil},
		{"agent", agentFams, "nestbox_agent_operation_duration_seconds", []string{"op", "create", "tier", "", "outcome", "ok"}},
		{"agent", agentFams, "nestbox_agent_operation_duration_seconds", []string{"op", "destroy", "tier", "", "outcome", "ok"}},
	} {
		if got := metricstest.Value(t, tc.fams, tc.name, tc.labels...); got < 1 {
			t.Errorf("%s: %s%v = %g after a create and a destroy, want at least 1\n%s", tc.what, tc.name, tc.labels, got, metricstest.Describe(tc.fams, tc.name))
		}
	}
	if got := metricstest.Value(t, server, "nestbox_capsules", "host", "local", "status", "running"); got != 0 {
		t.Errorf("server: nestbox_capsules{host=local,status=running} = %g after the destroy, want 0", got)
	}
	if metricstest.Series(agentFams, "nestbox_agent_memory_bytes") != 5 || metricstest.Series(agentFams, "go_goroutines") != 1 {
		t.Errorf("agent: %d nestbox_agent_memory_bytes series and %d go_goroutines, want 5 and 1", metricstest.Series(agentFams, "nestbox_agent_memory_bytes"), metricstest.Series(agentFams, "go_goroutines"))
	}
}
