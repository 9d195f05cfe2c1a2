package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/metrics"
	"nestbox.dev/internal/metrics/metricstest"
)

func TestOutcome(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{errdefs.Unavailable("agent down"), "unavailable"},
		{fmt.Errorf("create sandbox x: %w", errdefs.ErrExhausted), "resource_exhausted"},
		{context.DeadlineExceeded, "deadline_exceeded"},
		{fmt.Errorf("plain"), "internal"},
	} {
		if got := metrics.Outcome(tc.err); got != tc.want {
			t.Errorf("Outcome(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestServe checks the metrics listener: GET /metrics answers the
// registry (with the runtime and process collectors), nothing else is
// served, and it stops when its context ends.
func TestServe(t *testing.T) {
	reg := metrics.NewRegistry()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- metrics.Serve(ctx, ln, reg, nil) }()
	base := "http://" + ln.Addr().String()

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	fams := metricstest.Parse(t, resp.Body)
	resp.Body.Close()
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if metricstest.Series(fams, name) != 1 {
			t.Errorf("GET /metrics has %d series of %s, want 1", metricstest.Series(fams, name), name)
		}
	}
	for _, r := range []struct{ method, path string }{{"POST", "/metrics"}, {"GET", "/"}, {"GET", "/metrics/x"}, {"GET", "/v1/capsules"}} {
		req, _ := http.NewRequest(r.method, base+r.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || strings.Contains(string(b), "go_goroutines") {
			t.Errorf("%s %s: %d, want an error and no metrics", r.method, r.path, resp.StatusCode)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after its context ended: %v, want nil", err)
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Error("still served after the context ended")
	}
}
