package lifecycle

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/store"
)

// CreateOption changes how Create makes a capsule.
type CreateOption func(*createOptions)

type createOptions struct {
	noAccessToken bool
}

// WithoutAccessToken makes a capsule whose envd requires no access token:
// E2B's insecure sandboxes (secure: false), whose clients talk to envd
// with no token.
func WithoutAccessToken() CreateOption { return func(o *createOptions) { o.noAccessToken = true } }

// Create records a new capsule of team in StatusStarting and starts it on a
// host in the background. It returns at once. A request that passes a
// per-capsule limit is errdefs.ErrInvalid, an unknown template
// errdefs.ErrNotFound, a capsule that would pass the team's quota
// errdefs.ErrExhausted; in every case nothing is created.
func (s *Service) Create(ctx context.Context, teamID string, req nestbox.CreateCapsuleRequest, opts ...CreateOption) (nestbox.Capsule, error) {
	var o createOptions
	for _, f := range opts {
		f(&o)
	}
	req, err := s.normalize(req)
	if err != nil {
		return nestbox.Capsule{}, err
	}
	if err := s.checkTemplate(ctx, req.Template); err != nil {
		return nestbox.Capsule{}, err
	}
	pctx, cancel := s.callContext(ctx, callQuery)
	host, err := s.hosts.Pick(pctx, req)
	cancel()
	if err != nil {
		return nestbox.Capsule{}, fmt.Errorf("place capsule: %w", err)
	}
	now := s.cfg.Now().UTC()
	expires := now.Add(time.Duration(req.TimeoutSeconds) * time.Second)
	c := store.Capsule{
		Capsule: nestbox.Capsule{
			ID:              capsulespec.NewID(),
			TeamID:          teamID,
			Template:        req.Template,
			Status:          nestbox.StatusStarting,
			VCPUs:           req.VCPUs,
			MemoryMB:        req.MemoryMB,
			DiskMB:          req.DiskMB,
			Metadata:        req.Metadata,
			Internet:        *req.Internet,
			AllowOut:        req.AllowOut,
			DenyOut:         req.DenyOut,
			HostID:          host.ID,
			CreatedAt:       now,
			ExpiresAt:       &expires,
			AutoPause:       req.AutoPause,
			AutoPauseMemory: req.AutoPause && (req.AutoPauseMemory == nil || *req.AutoPauseMemory),
			AutoResume:      req.AutoResume,
		},
		EnvVars:     req.EnvVars,
		AccessToken: rand.Text(),
		UpdatedAt:   now,
		Generation:  1,
	}
	if o.noAccessToken {
		c.AccessToken = ""
	}
	if req.PublicTraffic != nil && !*req.PublicTraffic {
		c.TrafficAccessToken = rand.Text()
	}
	if err := s.store.CreateCapsuleWithin(ctx, c, s.cfg.TeamQuota); err != nil {
		return nestbox.Capsule{}, fmt.Errorf("record capsule: %w", err)
	}
	s.publish(ctx, nestbox.CapsuleEvent{CapsuleID: c.ID, To: nestbox.StatusStarting, At: now})
	s.background(c.ID, func(ctx context.Context) { s.runCreate(ctx, c, host, req.TimeoutSeconds) })
	return c.Capsule, nil
}

// runCreate creates the sandbox on its host and records the outcome. If
// the capsule was moved to StatusStopping meanwhile (a destroy during the
// create), it finishes that destroy instead.
func (s *Service) runCreate(ctx context.Context, c store.Capsule, host Host, timeoutSeconds int) {
	log := s.log.With("capsule", c.ID, "host", host.ID)
	start := time.Now()
	cctx, cancel := s.callContext(ctx, callCreate)
	resp, err := host.Agent.CreateSandbox(cctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: &agentpb.SandboxConfig{
		Id:                      c.ID,
		Template:                c.Template,
		Vcpus:                   uint32(c.VCPUs),
		MemoryMb:                uint32(c.MemoryMB),
		DiskBytes:               int64(c.DiskMB) << 20,
		TimeoutSeconds:          uint32(timeoutSeconds),
		EnvVars:                 c.EnvVars,
		Metadata:                c.Metadata,
		Internet:                c.Internet,
		AllowOut:                c.AllowOut,
		DenyOut:                 c.DenyOut,
		AccessToken:             c.AccessToken,
		AutoPause:               c.AutoPause,
		AutoPauseFilesystemOnly: c.AutoPause && !c.AutoPauseMemory,
	}}))
	cancel()
	s.metrics.observeOp(opCreate, start, err, ctx.Err() != nil)
	if ctx.Err() != nil {
		// The control plane is shutting down: the agent unwound the
		// create. The next reconcile resolves the capsule.
		log.Info("create interrupted by shutdown")
		return
	}
	// The rest must run to completion even if shutdown begins now.
	ctx = context.WithoutCancel(ctx)
	if err != nil {
		err = errdefs.FromConnect(err)
		log.Warn("create failed", "err", err)
		_, terr := s.transition(ctx, c.ID, []nestbox.Status{nestbox.StatusStarting}, store.StatusUpdate{
			To: nestbox.StatusError, Reason: "create: " + err.Error(), StoppedAt: s.cfg.Now().UTC(),
		})
		if errors.Is(terr, errdefs.ErrConflict) {
			// Destroyed while starting: nothing runs, but the agent may
			// hold a remnant if the failure was only in answering.
			s.finishDestroy(ctx, c.ID, host)
		}
		return
	}
	sb := resp.Msg.GetSandbox()
	// The host resolves the disk's default (and never goes below the
	// template): the capsule records what it got, the one size every
	// answer shows.
	u := store.StatusUpdate{To: nestbox.StatusRunning, EnvdVersion: sb.GetEnvdVersion(), DiskMB: int(sb.GetConfig().GetDiskBytes() >> 20), StartedAt: s.cfg.Now().UTC()}
	if sb.GetEndAt() != nil {
		u.ExpiresAt = sb.GetEndAt().AsTime().UTC()
	}
	_, err = s.transition(ctx, c.ID, []nestbox.Status{nestbox.StatusStarting}, u)
	switch {
	case err == nil:
		log.Info("capsule running")
	case errors.Is(err, errdefs.ErrConflict):
		// A destroy came in while the host was creating.
		s.finishDestroy(ctx, c.ID, host)
	default:
		log.Error("record running capsule", "err", err)
	}
}
