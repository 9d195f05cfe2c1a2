package process

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
)

// Keepalive intervals, from the Keepalive-Ping-Interval request header in
// seconds. The cap keeps a stream that asked for a long interval below the
// idle timeouts of common proxies and load balancers (often 5 to 10 min).
const (
	keepaliveHeader     = "Keepalive-Ping-Interval"
	defaultKeepalive    = 90 * time.Second // E2B envd's default
	maxKeepaliveSeconds = 300
)

// keepaliveInterval reads the interval a client asked for; an absent,
// malformed or non-positive value means the default.
func keepaliveInterval(h http.Header) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h.Get(keepaliveHeader)))
	if err != nil || n <= 0 {
		return defaultKeepalive
	}
	return time.Duration(min(n, maxKeepaliveSeconds)) * time.Second
}

// follow streams p's events to one client through f: the start event, the
// data events, keepalives every interval, and the end event. It returns
// when the process has ended, f was cut off, or the client went away; the
// process itself is never affected.
func (s *Service) follow(ctx context.Context, p *proc, f *follower, interval time.Duration, send func(*processpb.ProcessEvent) error) error {
	defer p.unsubscribe(f)
	if err := send(&processpb.ProcessEvent{Event: &processpb.ProcessEvent_Start{Start: &processpb.ProcessEvent_StartEvent{Pid: p.pid}}}); err != nil {
		return err
	}
	keepalive := time.NewTicker(interval)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return errdefs.ToConnect(ctx.Err())
		case ev, ok := <-f.ch:
			if !ok {
				if f.err != nil {
					return errdefs.ToConnect(f.err)
				}
				return send(&processpb.ProcessEvent{Event: &processpb.ProcessEvent_End{End: f.end}})
			}
			if err := send(ev); err != nil {
				return err
			}
		case <-keepalive.C:
			if err := send(&processpb.ProcessEvent{Event: &processpb.ProcessEvent_Keepalive{Keepalive: &processpb.ProcessEvent_KeepAlive{}}}); err != nil {
				return err
			}
		}
	}
}
