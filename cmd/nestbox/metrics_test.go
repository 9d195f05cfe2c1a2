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

	"github.com/prometheus/client_golang/prometheus"

	"nestbox.dev/internal/metrics"
)

// TestMetricsListenFlag checks --metrics-listen: off unless given, and
// what serveMetrics does with it (serves GET /metrics there until the
// context ends; a bad address fails at once).
func TestMetricsListenFlag(t *testing.T) {
	runsc := filepath.Join(t.TempDir(), "runsc")
	os.WriteFile(runsc, nil, 0o755)
	t.Setenv("NESTBOX_RUNSC", runsc)
	t.Setenv("NESTBOX_METRICS_LISTEN", "")
	if _, _, _, _, addr, err := parseAgentFlags(nil, &bytes.Buffer{}); err != nil || addr != "" {
		t.Fatalf("agent without --metrics-listen: %q, %v; want none", addr, err)
	}
	_, _, _, _, addr, err := parseAgentFlags([]string{"--metrics-listen", "127.0.0.1:0"}, &bytes.Buffer{})
	if err != nil || addr != "127.0.0.1:0" {
		t.Fatalf("agent --metrics-listen 127.0.0.1:0: %q, %v", addr, err)
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
