package lifecycle

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
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
	var sn *store.Snapshot
	if req.Template != "" {
		var err error
		if sn, err = s.resolveTemplate(ctx, teamID, req.Template); err != nil {
			// A request that is invalid anyway says so first, unless it
			// names a snapshot ("name:tag"), which no template name is.
			if _, nerr := s.normalize(req); errors.Is(err, errdefs.ErrNotFound) && nerr != nil && !strings.Contains(req.Template, ":") {
				return nestbox.Capsule{}, nerr
			}
			return nestbox.Capsule{}, err
		}
	}
	if sn != nil {
		var err error
		if req, err = fromSnapshot(req, *sn); err != nil {
			return nestbox.Capsule{}, err
		}
	}
	req, err := s.normalize(req)
	if err != nil {
		return nestbox.Capsule{}, err
	}
	var host Host
	if sn != nil {
		// The snapshot lives on its host: the capsule starts there.
		if host, err = s.hosts.Get(sn.HostID); err != nil {
			return nestbox.Capsule{}, errdefs.Unavailable("host %s of snapshot %s: %v", sn.HostID, sn.ID, err)
		}
	} else {
		if err := s.checkTemplate(ctx, req.Template); err != nil {
			return nestbox.Capsule{}, err
		}
		pctx, cancel := s.callContext(ctx, callQuery)
		host, err = s.hosts.Pick(pctx, req)
		cancel()
		if err != nil {
			return nestbox.Capsule{}, fmt.Errorf("place capsule: %w", err)
		}
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
	if sn != nil {
		c.SnapshotID = sn.ID
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

// fromSnapshot is req for a capsule started from snapshot sn: the
// snapshot's template, sizes and egress rules (any the request asks for
// must be the snapshot's, else errdefs.ErrInvalid), and the source's
// environment with the request's added. A snapshot that is not ready is
// errdefs.ErrConflict.
func fromSnapshot(req nestbox.CreateCapsuleRequest, sn store.Snapshot) (nestbox.CreateCapsuleRequest, error) {
	if sn.Status != nestbox.SnapshotReady {
		return req, errdefs.Conflict("snapshot %s is %s, not ready", sn.ID, sn.Status)
	}
	for _, f := range []struct {
		name       string
		asked, has int
	}{{"vcpus", req.VCPUs, sn.VCPUs}, {"memory_mb", req.MemoryMB, sn.MemoryMB}, {"disk_mb", req.DiskMB, sn.DiskMB}} {
		if f.asked != 0 && f.asked != f.has {
			return req, errdefs.Invalid("%s %d: a capsule started from snapshot %s has its %d", f.name, f.asked, sn.ID, f.has)
		}
	}
	if req.Internet != nil && *req.Internet != sn.Internet ||
		req.AllowOut != nil && !slices.Equal(req.AllowOut, sn.AllowOut) ||
		req.DenyOut != nil && !slices.Equal(req.DenyOut, sn.DenyOut) {
		return req, errdefs.Invalid("a capsule started from snapshot %s has its egress rules (internet %v, allow_out %v, deny_out %v)", sn.ID, sn.Internet, sn.AllowOut, sn.DenyOut)
	}
	internet := sn.Internet
	req.Template, req.VCPUs, req.MemoryMB, req.DiskMB = sn.Template, sn.VCPUs, sn.MemoryMB, sn.DiskMB
	req.Internet, req.AllowOut, req.DenyOut = &internet, sn.AllowOut, sn.DenyOut
	env := maps.Clone(sn.EnvVars)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, req.EnvVars)
	if len(env) > 0 {
		req.EnvVars = env
	}
	return req, nil
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
		SnapshotId:              c.SnapshotID,
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
		_, terr := s.record(ctx, c.ID, []nestbox.Status{nestbox.StatusStarting}, store.StatusUpdate{
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
	_, err = s.record(ctx, c.ID, []nestbox.Status{nestbox.StatusStarting}, u)
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
