package process

import (
	"context"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
)

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
