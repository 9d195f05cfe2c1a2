package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nestbox.dev/internal/metrics"
)

// The route label of requests no pattern of the route tables serves. Every
// other request is labelled with its route's pattern ("GET
// /v1/capsules/{id}"), never its path: a label value per capsule ID would
// grow the series without bound.
const (
	routeSandboxTraffic = "sandbox traffic" // E2B's routing: a capsule's own paths
	routeUnready        = "unready"         // held off with 503 while starting
	routeUnmatched      = "unmatched"       // 404 or 405
)

// httpMetrics counts the API's requests by route and status class.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbox_http_requests_total",
			Help: "Requests to the control plane's API by route pattern and status class (2xx, 4xx, ...).",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nestbox_http_request_duration_seconds",
			Help: "Time from a request's arrival to its response's header (for streams and WebSockets: to the upgrade or first byte), by route pattern and status class.",
			// API calls answer in milliseconds; waits (?wait, pause with
			// a timeout) last seconds to minutes.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"route", "code"}),
	}
	return m, metrics.Register(reg, m.requests, m.duration)
}

// instrument wraps serve, which serves a request and returns its route
// label, so that every request is counted and timed.
func (m *httpMetrics) instrument(serve func(w http.ResponseWriter, r *http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, start: time.Now()}
		route := serve(rec, r)
		if route == "" {
			route = routeUnmatched
		}
		code, took := rec.result()
		class := strconv.Itoa(code/100) + "xx"
		m.requests.WithLabelValues(route, class).Inc()
		m.duration.WithLabelValues(route, class).Observe(took.Seconds())
	})
}

// statusRecorder notes the status and the time of a response's header.
// Unwrap gives http.ResponseController (flushes, hijacking, full duplex)
// and the WebSocket library the writer underneath.
type statusRecorder struct {
	http.ResponseWriter
	start  time.Time
	code   int
	header time.Duration
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.code, s.header = code, time.Since(s.start)
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code, s.header = http.StatusOK, time.Since(s.start)
	}
	return s.ResponseWriter.Write(b)
}

// Flush lets handlers that flush through an http.Flusher assertion do so.
func (s *statusRecorder) Flush() {
	if s.code == 0 {
		s.code, s.header = http.StatusOK, time.Since(s.start)
	}
	http.NewResponseController(s.ResponseWriter).Flush()
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// result is the response's status and the time to its header; a handler
// that wrote nothing answered 200 when it returned (as net/http does).
func (s *statusRecorder) result() (int, time.Duration) {
	if s.code == 0 {
		return http.StatusOK, time.Since(s.start)
	}
	return s.code, s.header
}
