// Package keepalive reads how often envd's streams (process output, watches)
// send keepalive events: E2B's SDK asks with the Keepalive-Ping-Interval
// header, in seconds. One policy for every stream. Imported by envd's
// services.
package keepalive

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	// Header is the request header E2B's SDK sends on streams.
	Header = "Keepalive-Ping-Interval"
	// Default applies when the header is absent, malformed or not
	// positive; it is E2B envd's default.
	Default = 90 * time.Second
	// MaxSeconds caps a requested interval so that a quiet stream stays
	// below the idle timeouts of common proxies and load balancers (often
	// 5 to 10 minutes).
	MaxSeconds = 300
)

// Interval returns the keepalive interval a request asked for.
func Interval(h http.Header) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h.Get(Header)))
	if err != nil || n <= 0 {
		return Default
	}
	return time.Duration(min(n, MaxSeconds)) * time.Second
}
