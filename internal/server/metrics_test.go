package server_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/metrics"
	"nestbox.dev/internal/metrics/metricstest"
)

// registerer is reg as a Registerer, nil when reg is nil (not an
// interface holding a nil pointer).
func registerer(reg *prometheus.Registry) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return reg
}

// serveMetrics serves reg's /metrics on a listener of its own, as
// `--metrics-listen` does, and returns its URL.
func serveMetrics(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- metrics.Serve(ctx, ln, reg, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("metrics.Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// scrape GETs url's /metrics and parses the exposition text.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	return metricstest.Parse(t, resp.Body)
}

// TestMetricsAfterCreateAndDestroy creates and destroys a capsule through
// the API with the fake host, scrapes the metrics listener, and checks
// the series that must have moved: requests by route pattern and status
// class, the lifecycle's operation histograms, the capsule gauge, and the
// Go runtime's and the process's collectors.
func TestMetricsAfterCreateAndDestroy(t *testing.T) {
	reg := metrics.NewRegistry()
	e := newEnv(t, withMetrics(reg))
	murl := serveMetrics(t, reg)

	c := e.create(t, e.keyA, nestbox.CreateCapsuleRequest{})
	if code, body := e.do(t, "GET", "/v1/capsules/"+c.ID+"?wait=running&timeout=20s", e.keyA, nil); code != 200 {
		t.Fatalf("wait=running: %d %s", code, body)
	}
	fams := scrape(t, murl)
	if got := metricstest.Value(t, fams, "nestbox_capsules", "host", "h1", "status", "running"); got != 1 {
		t.Errorf("nestbox_capsules{host=h1,status=running} = %g with one running capsule, want 1", got)
	}
	if code, body := e.do(t, "DELETE", "/v1/capsules/"+c.ID, e.keyA, nil); code != http.StatusAccepted {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, body := e.do(t, "GET", "/v1/capsules/"+c.ID+"?wait=stopped&timeout=20s", e.keyA, nil); code != 200 {
		t.Fatalf("wait=stopped: %d %s", code, body)
	}
	e.do(t, "GET", "/v1/capsules/"+c.ID, "", nil) // 401

	fams = scrape(t, murl)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"nestbox_http_requests_total", []string{"route", "POST /v1/capsules", "code", "2xx"}, 1},
		{"nestbox_http_requests_total", []string{"route", "GET /v1/capsules/{id}", "code", "2xx"}, 2},
		{"nestbox_http_requests_total", []string{"route", "GET /v1/capsules/{id}", "code", "4xx"}, 1},
		{"nestbox_http_requests_total", []string{"route", "DELETE /v1/capsules/{id}", "code", "2xx"}, 1},
		{"nestbox_http_request_duration_seconds", []string{"route", "DELETE /v1/capsules/{id}", "code", "2xx"}, 1},
		{"nestbox_lifecycle_operation_duration_seconds", []string{"op", "create", "outcome", "ok"}, 1},
		{"nestbox_lifecycle_operation_duration_seconds", []string{"op", "destroy", "outcome", "ok"}, 1},
		{"nestbox_capsules", []string{"host", "h1", "status", "running"}, 0},
	} {
		if got := metricstest.Value(t, fams, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %g, want %g\n%s", tc.name, tc.labels, got, tc.want, metricstest.Describe(fams, tc.name))
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if metricstest.Series(fams, name) == 0 {
			t.Errorf("no %s: the registry lacks the Go runtime or process collector", name)
		}
	}

	// The metrics listener serves /metrics alone: no API behind it.
	resp, err := http.Get(murl + "/v1/capsules")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/capsules on the metrics listener: %d, want 404", resp.StatusCode)
	}
}

// TestMetricsLabelCardinality sends requests naming many distinct
// capsule IDs (and paths no route serves) by every way a request can
// name one, and checks that the request metrics' series stay few and
// that no label value holds an ID or a path.
func TestMetricsLabelCardinality(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, withMetrics(reg))
	const n = 100
	var ids []string
	for range n {
		id := capsulespec.NewID()
		ids = append(ids, id)
		for _, p := range []string{
			"/v1/capsules/" + id,
			"/v1/capsules/" + id + "/files?path=/x",
			"/proxy/" + id + "/8080/a/" + id,
			"/sandboxes/" + id,
			"/no/such/route/" + id,
		} {
			e.do(t, "GET", p, e.keyA, nil)
		}
		// E2B's routing: the capsule in the host name.
		req, err := http.NewRequest("GET", e.url+"/files", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = fmt.Sprintf("49983-%s.localhost", id)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	fams := metricstest.Families(t, reg)
	for _, name := range []string{"nestbox_http_requests_total", "nestbox_http_request_duration_seconds"} {
		// Six routes (four patterns, sandbox traffic, unmatched), each in
		// at most a few status classes: far fewer than the 600 requests.
		if got := metricstest.Series(fams, name); got == 0 || got > 6*3 {
			t.Errorf("%s has %d series after %d requests naming %d capsules, want 1 to 18:\n%s", name, got, 6*n, n, metricstest.Describe(fams, name))
		}
		for _, route := range metricstest.LabelValues(fams, name, "route") {
			if strings.Contains(route, "/no/such") || slices.ContainsFunc(ids, func(id string) bool { return strings.Contains(route, id) }) {
				t.Errorf("%s has route label %q: a path, not a pattern", name, route)
			}
		}
	}
	routes := metricstest.LabelValues(fams, "nestbox_http_requests_total", "route")
	for _, want := range []string{"GET /v1/capsules/{id}", "GET /v1/capsules/{id}/files", "* /proxy/{id}/{port}/{path...}", "GET /sandboxes/{id}", "unmatched", "sandbox traffic"} {
		if !strings.Contains(strings.Join(routes, "\n")+"\n", want+"\n") {
			t.Errorf("no requests counted under route %q; routes: %q", want, routes)
		}
	}
}
