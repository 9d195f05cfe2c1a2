package lifecycle

import (
	"context"
	"time"
)

// agentCall is a kind of control plane → agent call. Every call to a host
// agent takes its deadline from callContext, so that no call can hang on a
// host that stopped answering, and the table below is the one place that
// says how long each may take.
type agentCall int

const (
	// callQuery is a call the agent answers from memory: list, get,
	// templates, ping, metrics, set timeout.
	callQuery agentCall = iota
	// callCreate starts a sandbox, building its template first if needed;
	// its deadline is Config.CreateTimeout.
	callCreate
	// callDestroy stops a sandbox and removes its files.
	callDestroy
	// callPause writes a sandbox's memory image and disk: minutes for a
	// multi-GiB image.
	callPause
	// callResume restores a sandbox from its snapshot.
	callResume
)

// Default deadlines (Config.QueryTimeout, Config.DestroyTimeout).
const (
	DefaultQueryTimeout   = 10 * time.Second
	DefaultDestroyTimeout = 2 * time.Minute
	DefaultPauseTimeout   = 5 * time.Minute
	DefaultResumeTimeout  = 5 * time.Minute
)

// callContext returns ctx bounded by the deadline of a call of kind k:
//
//	callQuery    Config.QueryTimeout    10 s
//	callCreate   Config.CreateTimeout   10 min
//	callDestroy  Config.DestroyTimeout  2 min
//	callPause    Config.PauseTimeout    5 min
//	callResume   Config.ResumeTimeout   5 min
func (s *Service) callContext(ctx context.Context, k agentCall) (context.Context, context.CancelFunc) {
	d := s.cfg.QueryTimeout
	switch k {
	case callCreate:
		d = s.cfg.CreateTimeout
	case callDestroy:
		d = s.cfg.DestroyTimeout
	case callPause:
		d = s.cfg.PauseTimeout
	case callResume:
		d = s.cfg.ResumeTimeout
	}
	return context.WithTimeout(ctx, d)
}
