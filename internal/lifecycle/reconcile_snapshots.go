package lifecycle

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/store"
)

// reconcileSnapshots compares the snapshots a host keeps with the store's:
//   - a ready snapshot the host no longer lists becomes SnapshotError
//     ("the host no longer has it"): it stays visible, with the template it
//     backs, until the team deletes it, rather than vanishing;
//   - a snapshot stuck creating with no work in flight here (its control
//     plane went away) becomes ready if the host has it, else its row is
//     removed, as a failed create's is;
//   - a snapshot the host keeps that the store has no row for (a create
//     whose outcome was lost) is deleted on the host;
//   - the host is sent the warm pools of the templates its snapshots back.
//
// As in reconcileHost, the store is read before the host is asked, and a
// host snapshot without a row is looked up again before it is deleted: a
// snapshot's row is written before the host is asked to take it. A host
// whose agent does not know snapshots (unimplemented) is skipped.
func (s *Service) reconcileSnapshots(ctx context.Context, h Host) error {
	var rows []store.Snapshot
	f := store.SnapshotFilter{HostID: h.ID, Statuses: []nestbox.SnapshotStatus{nestbox.SnapshotReady, nestbox.SnapshotCreating}, Limit: 1000}
	for {
		list, next, err := s.store.ListSnapshots(ctx, f)
		if err != nil {
			return err
		}
		rows = append(rows, list...)
		if next == "" {
			break
		}
		f.Cursor = next
	}
	lctx, cancel := s.callContext(ctx, callQuery)
	resp, err := h.Agent.ListSnapshots(lctx, connect.NewRequest(&agentpb.ListSnapshotsRequest{}))
	cancel()
	if err != nil {
		err = errdefs.FromConnect(err)
		if errors.Is(err, errdefs.ErrUnimplemented) {
			return nil
		}
		return fmt.Errorf("list snapshots: %w", err)
	}
	onHost := map[string]*agentpb.Snapshot{}
	for _, sn := range resp.Msg.GetSnapshots() {
		onHost[sn.GetId()] = sn
	}
	var errs []error
	known := map[string]bool{}
	for _, sn := range rows {
		known[sn.ID] = true
		info, has := onHost[sn.ID]
		switch {
		case sn.Status == nestbox.SnapshotReady && !has:
			s.log.Warn("reconcile: a snapshot is gone from its host", "snapshot", sn.ID, "host", h.ID)
			_, err := s.store.UpdateSnapshot(ctx, sn.ID, []nestbox.SnapshotStatus{nestbox.SnapshotReady}, store.SnapshotUpdate{
				To: nestbox.SnapshotError, Error: fmt.Sprintf("host %s no longer has this snapshot", h.ID), At: s.cfg.Now().UTC(),
			})
			if err != nil && !errors.Is(err, errdefs.ErrConflict) {
				errs = append(errs, err)
			}
		case sn.Status == nestbox.SnapshotCreating && s.snapshotStuck(sn):
			if has {
				_, err := s.store.UpdateSnapshot(ctx, sn.ID, []nestbox.SnapshotStatus{nestbox.SnapshotCreating}, store.SnapshotUpdate{
					To: nestbox.SnapshotReady, SizeBytes: info.GetSizeBytes(), DiskMB: int(info.GetDiskBytes() >> 20), EnvdVersion: info.GetEnvdVersion(),
				})
				if err != nil && !errors.Is(err, errdefs.ErrConflict) {
					errs = append(errs, err)
				}
				continue
			}
			s.log.Info("reconcile: removing a snapshot whose create was lost", "snapshot", sn.ID, "host", h.ID)
			if err := s.store.DeleteSnapshot(ctx, sn.ID); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				errs = append(errs, err)
			}
		}
	}
	for id := range onHost {
		if known[id] {
			continue
		}
		if _, err := s.store.GetSnapshot(ctx, id); !errors.Is(err, errdefs.ErrNotFound) {
			if err != nil {
				errs = append(errs, err)
			}
			continue // recorded since the store was read, or being deleted
		}
		s.log.Info("reconcile: deleting a snapshot the store has no row for", "snapshot", id, "host", h.ID)
		dctx, cancel := s.callContext(ctx, callDestroy)
		_, err := h.Agent.DeleteSnapshot(dctx, connect.NewRequest(&agentpb.DeleteSnapshotRequest{Id: id}))
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("delete snapshot %s: %w", id, errdefs.FromConnect(err)))
		}
	}
	// The warm pools of the templates made from them: the store's are the
	// truth, and an agent that missed a change (down, or restarted on
	// another data directory) gets them here.
	var ready []store.Snapshot
	for _, sn := range rows {
		if _, has := onHost[sn.ID]; has {
			ready = append(ready, sn)
		}
	}
	if err := s.setHostPools(ctx, h, ready); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// snapshotStuck reports whether a creating snapshot has no create in
// flight in this process and was recorded before this Service started or
// more than StuckAfter ago.
func (s *Service) snapshotStuck(sn store.Snapshot) bool {
	s.snapMu.Lock()
	_, inflight := s.snapWaits[sn.ID]
	s.snapMu.Unlock()
	if inflight {
		return false
	}
	return sn.UpdatedAt.Before(s.started) || s.cfg.Now().Sub(sn.UpdatedAt) > s.cfg.StuckAfter
}
