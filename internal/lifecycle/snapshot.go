package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/store"
)

// SnapshotOptions are the settings of a Snapshot.
type SnapshotOptions struct {
	// Name is "name" or "name:tag" (see ParseSnapshotName); empty makes
	// an unnamed snapshot.
	Name string
	// Pause pauses the capsule (with its memory) once the snapshot is
	// taken; otherwise it runs on.
	Pause bool
}

// DefaultSnapshotTag is the tag of a snapshot name given without one, as
// in E2B.
const DefaultSnapshotTag = "default"

// ParseSnapshotName returns the full "name:tag" of a snapshot name given
// as "name" or "name:tag". Each part is 1 to 63 of [A-Za-z0-9._-],
// starting with a letter or digit; anything else is errdefs.ErrInvalid.
func ParseSnapshotName(s string) (string, error) {
	name, tag, hasTag := strings.Cut(s, ":")
	if !hasTag {
		tag = DefaultSnapshotTag
	}
	if !validNamePart(name) || !validNamePart(tag) {
		return "", errdefs.Invalid("snapshot name %q: want name or name:tag, each 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", s)
	}
	return name + ":" + tag, nil
}

// validNamePart reports whether s is a name or tag of ParseSnapshotName.
func validNamePart(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// snapshotWait is the outcome of a snapshot this process is creating:
// done is closed once err is set (nil when the snapshot is ready).
type snapshotWait struct {
	done chan struct{}
	err  error
}

// Snapshot records a snapshot of a running capsule of team in
// SnapshotCreating (counted in the team's snapshot and disk limits at
// once, with the most it can take: the capsule's disk and memory) and takes
// it on the capsule's host in the background; it returns at once. The
// capsule stops for the checkpoint and runs on (or, opts.Pause, is paused
// afterwards). A capsule that is not running is errdefs.ErrConflict, a
// name the team has errdefs.ErrAlreadyExists, a limit passed
// errdefs.ErrExhausted; then nothing is recorded. If the host fails to
// take it, the snapshot's row is removed (WaitSnapshot returns the
// error).
func (s *Service) Snapshot(ctx context.Context, teamID, capsuleID string, opts SnapshotOptions) (nestbox.Snapshot, error) {
	name := ""
	if opts.Name != "" {
		var err error
		if name, err = ParseSnapshotName(opts.Name); err != nil {
			return nestbox.Snapshot{}, err
		}
	}
	src, host, err := s.runningNow(ctx, teamID, capsuleID)
	if err != nil {
		return nestbox.Snapshot{}, err
	}
	now := s.cfg.Now().UTC()
	sn := store.Snapshot{
		Snapshot: nestbox.Snapshot{
			ID:          capsulespec.NewID(),
			TeamID:      teamID,
			Name:        name,
			CapsuleID:   src.ID,
			HostID:      host.ID,
			Status:      nestbox.SnapshotCreating,
			Template:    src.Template,
			VCPUs:       src.VCPUs,
			MemoryMB:    src.MemoryMB,
			DiskMB:      src.DiskMB,
			Internet:    src.Internet,
			AllowOut:    src.AllowOut,
			DenyOut:     src.DenyOut,
			SizeBytes:   int64(src.DiskMB+src.MemoryMB) << 20,
			EnvdVersion: src.EnvdVersion,
			CreatedAt:   now,
		},
		EnvVars:   maps.Clone(src.EnvVars),
		UpdatedAt: now,
	}
	if err := s.store.CreateSnapshotWithin(ctx, sn, s.cfg.TeamQuota); err != nil {
		return nestbox.Snapshot{}, fmt.Errorf("record snapshot of capsule %s: %w", src.ID, err)
	}
	w := &snapshotWait{done: make(chan struct{})}
	s.snapMu.Lock()
	s.snapWaits[sn.ID] = w
	s.snapMu.Unlock()
	s.backgroundFor([]string{src.ID}, func(ctx context.Context) {
		w.err = s.runSnapshot(ctx, src, host, sn, opts.Pause)
		s.snapMu.Lock()
		delete(s.snapWaits, sn.ID)
		s.snapMu.Unlock()
		close(w.done)
	})
	return sn.Snapshot, nil
}

// runSnapshot takes the snapshot on the host and records the outcome:
// ready, or the row removed. A failure that lost the source sandbox makes
// the capsule StatusError, as a failed pause does.
func (s *Service) runSnapshot(ctx context.Context, src store.Capsule, host Host, sn store.Snapshot, pause bool) error {
	log := s.log.With("capsule", src.ID, "snapshot", sn.ID, "host", host.ID)
	cctx, cancel := s.callContext(ctx, callPause)
	resp, err := host.Agent.CreateSnapshot(cctx, connect.NewRequest(&agentpb.CreateSnapshotRequest{SandboxId: src.ID, SnapshotId: sn.ID}))
	cancel()
	if ctx.Err() != nil {
		log.Info("snapshot interrupted by shutdown")
		return errdefs.Unavailable("the control plane is shutting down")
	}
	ctx = context.WithoutCancel(ctx)
	if err != nil {
		err = errdefs.FromConnect(err)
		log.Warn("snapshot failed", "err", err)
		if derr := s.store.DeleteSnapshot(ctx, sn.ID); derr != nil {
			log.Error("remove the row of a failed snapshot", "err", derr)
		}
		if _, gerr := s.getSandbox(ctx, host, src.ID); errors.Is(gerr, errdefs.ErrNotFound) {
			_, terr := s.transition(ctx, src.ID, []nestbox.Status{nestbox.StatusRunning}, store.StatusUpdate{
				To: nestbox.StatusError, Reason: "snapshot: " + err.Error() + "; the sandbox is gone", StoppedAt: s.cfg.Now().UTC(),
			})
			if terr != nil && !errors.Is(terr, errdefs.ErrConflict) {
				log.Error("record the loss of a snapshot's source", "err", terr)
			}
		}
		return fmt.Errorf("snapshot capsule %s: %w", src.ID, err)
	}
	info := resp.Msg.GetSnapshot()
	u := store.SnapshotUpdate{To: nestbox.SnapshotReady, SizeBytes: info.GetSizeBytes(), DiskMB: int(info.GetDiskBytes() >> 20), EnvdVersion: info.GetEnvdVersion()}
	if _, err := s.store.UpdateSnapshot(ctx, sn.ID, []nestbox.SnapshotStatus{nestbox.SnapshotCreating}, u); err != nil {
		log.Error("record a ready snapshot", "err", err)
		return fmt.Errorf("record snapshot %s: %w", sn.ID, err)
	}
	log.Info("snapshot ready", "size_bytes", info.GetSizeBytes())
	if pause {
		if _, err := s.Pause(ctx, src.TeamID, src.ID, PauseOptions{Memory: true}); err != nil {
			log.Warn("pause after the snapshot", "err", err)
		}
	}
	return nil
}

// snapshotPoll is how often WaitSnapshot reads a snapshot that another
// control plane is creating.
const snapshotPoll = 250 * time.Millisecond

// WaitSnapshot waits until snapshot ref of team is no longer being
// created, or ctx ends, and returns it as it is then (still creating if
// ctx ended first). A snapshot whose creation failed returns that error
// if this process made it, else errdefs.ErrNotFound (its row is gone).
func (s *Service) WaitSnapshot(ctx context.Context, teamID, ref string) (nestbox.Snapshot, error) {
	sn, err := s.snapshot(ctx, teamID, ref)
	for err == nil && sn.Status == nestbox.SnapshotCreating {
		s.snapMu.Lock()
		w := s.snapWaits[sn.ID]
		s.snapMu.Unlock()
		if w != nil {
			select {
			case <-w.done:
				if w.err != nil {
					return sn.Snapshot, w.err
				}
			case <-ctx.Done():
				return sn.Snapshot, nil
			}
		} else {
			t := time.NewTimer(snapshotPoll)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return sn.Snapshot, nil
			}
		}
		sn, err = s.snapshot(ctx, teamID, sn.ID)
	}
	return sn.Snapshot, err
}
