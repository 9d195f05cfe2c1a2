package lifecycle

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/store"
)

// MaxForks is the most forks one Fork call makes.
const MaxForks = 10

// ForkOptions are the settings of a Fork.
type ForkOptions struct {
	// Count is how many forks; zero means 1.
	Count int
	// Timeout is each fork's lifetime; zero means DefaultTimeout (at
	// most Config.MaxLifetime).
	Timeout time.Duration
}

// Fork branches a running capsule of team into opts.Count new capsules
// that start from its processes, memory and files on its host: each is
// recorded in StatusStarting (counted in the team's quota like a create)
// and the host forks them all from one checkpoint in the background. It
// returns at once with the source and, per fork, its capsule or the error
// that kept it from being recorded (a quota refusal). A source that is not
// running is errdefs.ErrConflict; if no fork can be recorded at all, that
// error is returned.
func (s *Service) Fork(ctx context.Context, teamID, id string, opts ForkOptions) (nestbox.Capsule, []ForkResult, error) {
	if opts.Count == 0 {
		opts.Count = 1
	}
	if opts.Count < 0 || opts.Count > MaxForks {
		return nestbox.Capsule{}, nil, errdefs.Invalid("count %d: want 1 to %d", opts.Count, MaxForks)
	}
	if opts.Timeout == 0 {
		opts.Timeout = min(DefaultTimeout, s.cfg.MaxLifetime)
	}
	if opts.Timeout < time.Second || opts.Timeout > s.cfg.MaxLifetime {
		return nestbox.Capsule{}, nil, errdefs.Invalid("timeout_seconds %d: want 1 to %d", int(opts.Timeout/time.Second), int(s.cfg.MaxLifetime/time.Second))
	}
	src, host, err := s.runningNow(ctx, teamID, id)
	if err != nil {
		return src.Capsule, nil, err
	}
	now := s.cfg.Now().UTC()
	expires := now.Add(opts.Timeout)
	results := make([]ForkResult, opts.Count)
	var made []store.Capsule
	for i := range results {
		c := store.Capsule{
			Capsule: nestbox.Capsule{
				ID:              capsulespec.NewID(),
				TeamID:          src.TeamID,
				Template:        src.Template,
				Status:          nestbox.StatusStarting,
				VCPUs:           src.VCPUs,
				MemoryMB:        src.MemoryMB,
				DiskMB:          src.DiskMB,
				Metadata:        maps.Clone(src.Metadata),
				Internet:        src.Internet,
				AllowOut:        src.AllowOut,
				DenyOut:         src.DenyOut,
				HostID:          src.HostID,
				CreatedAt:       now,
				ExpiresAt:       &expires,
				AutoPause:       src.AutoPause,
				AutoPauseMemory: src.AutoPauseMemory,
				AutoResume:      src.AutoResume,
			},
			// The environment lives in the restored memory; the control
			// plane keeps it for a later boot from disk, as for any
			// capsule.
			EnvVars:    maps.Clone(src.EnvVars),
			UpdatedAt:  now,
			Generation: 1,
		}
		// A fork gets its own secrets: the source's token must not open
		// a fork, nor a fork's token the source.
		if src.AccessToken != "" {
			c.AccessToken = rand.Text()
		}
		if src.TrafficAccessToken != "" {
			c.TrafficAccessToken = rand.Text()
		}
		if err := s.store.CreateCapsuleWithin(ctx, c, s.cfg.TeamQuota); err != nil {
			results[i].Err = fmt.Errorf("record fork: %w", err)
			continue
		}
		s.publish(ctx, nestbox.CapsuleEvent{CapsuleID: c.ID, To: nestbox.StatusStarting, At: now})
		results[i].Capsule = c.Capsule
		made = append(made, c)
	}
	if len(made) == 0 {
		return src.Capsule, results, results[0].Err
	}
	ids := []string{src.ID}
	for _, c := range made {
		ids = append(ids, c.ID)
	}
	s.backgroundFor(ids, func(ctx context.Context) { s.runFork(ctx, src, host, made, opts.Timeout) })
	return src.Capsule, results, nil
}

// ForkResult is one fork of Fork: its capsule, or Err.
type ForkResult struct {
	Capsule nestbox.Capsule
	Err     error
}

// runFork forks the sandbox on its host and records each fork's outcome.
// A fork destroyed while starting is finished as runCreate does.
func (s *Service) runFork(ctx context.Context, src store.Capsule, host Host, forks []store.Capsule, timeout time.Duration) {
	log := s.log.With("capsule", src.ID, "host", host.ID)
	req := &agentpb.ForkSandboxRequest{Id: src.ID}
	for _, c := range forks {
		req.Forks = append(req.Forks, &agentpb.SandboxConfig{
			Id:                      c.ID,
			TimeoutSeconds:          uint32(timeout / time.Second),
			AccessToken:             c.AccessToken,
			Metadata:                c.Metadata,
			AutoPause:               c.AutoPause,
			AutoPauseFilesystemOnly: c.AutoPause && !c.AutoPauseMemory,
		})
	}
	start := time.Now()
	cctx, cancel := s.callContext(ctx, callCreate)
	resp, err := host.Agent.ForkSandbox(cctx, connect.NewRequest(req))
	cancel()
	s.metrics.observeOp(opFork, start, err, ctx.Err() != nil)
	if ctx.Err() != nil {
		log.Info("fork interrupted by shutdown")
		return // the next reconcile resolves the forks
	}
	ctx = context.WithoutCancel(ctx)
	got := map[string]*agentpb.ForkResult{}
	if err == nil {
		for _, r := range resp.Msg.GetForks() {
			got[r.GetId()] = r
		}
	} else {
		err = errdefs.FromConnect(err)
		log.Warn("fork failed", "err", err)
	}
	for _, c := range forks {
		r := got[c.ID]
		var u store.StatusUpdate
		switch {
		case err != nil:
			u = store.StatusUpdate{To: nestbox.StatusError, Reason: "fork: " + err.Error(), StoppedAt: s.cfg.Now().UTC()}
		case r == nil:
			u = store.StatusUpdate{To: nestbox.StatusError, Reason: "fork: the host did not report this fork", StoppedAt: s.cfg.Now().UTC()}
		case r.GetSandbox() == nil:
			u = store.StatusUpdate{To: nestbox.StatusError, Reason: "fork: " + r.GetError(), StoppedAt: s.cfg.Now().UTC()}
		default:
			sb := r.GetSandbox()
			u = store.StatusUpdate{To: nestbox.StatusRunning, EnvdVersion: sb.GetEnvdVersion(), DiskMB: int(sb.GetConfig().GetDiskBytes() >> 20), StartedAt: s.cfg.Now().UTC()}
			if sb.GetEndAt() != nil {
				u.ExpiresAt = sb.GetEndAt().AsTime().UTC()
			}
		}
		_, terr := s.transition(ctx, c.ID, []nestbox.Status{nestbox.StatusStarting}, u)
		switch {
		case terr == nil:
			log.Info("fork recorded", "fork", c.ID, "status", u.To)
		case errors.Is(terr, errdefs.ErrConflict):
			// Destroyed while forking: the host may hold it.
			s.finishDestroy(ctx, c.ID, host)
		default:
			log.Error("record fork", "fork", c.ID, "err", terr)
		}
	}
}
