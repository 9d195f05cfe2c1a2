package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/store"
)

// GetSnapshot returns a snapshot of team by reference (see snapshot). A
// snapshot of another team is not found: its existence is not revealed.
func (s *Service) GetSnapshot(ctx context.Context, teamID, ref string) (nestbox.Snapshot, error) {
	sn, err := s.snapshot(ctx, teamID, ref)
	return sn.Snapshot, err
}

// snapshot resolves a reference to a snapshot of team: its ID, its ID with
// a tag ("<id>:default", E2B's form of an unnamed snapshot), or its name
// ("name" meaning "name:default", or "name:tag"). The ID is tried first.
func (s *Service) snapshot(ctx context.Context, teamID, ref string) (store.Snapshot, error) {
	if id, tag, _ := strings.Cut(ref, ":"); capsulespec.ValidID(id) && (tag == "" || tag == DefaultSnapshotTag) {
		sn, err := s.store.GetSnapshot(ctx, id)
		if err == nil && sn.TeamID == teamID {
			return sn, nil
		}
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return store.Snapshot{}, err
		}
	}
	name, err := ParseSnapshotName(ref)
	if err != nil {
		return store.Snapshot{}, errdefs.NotFound("snapshot %q not found", ref)
	}
	list, _, err := s.store.ListSnapshots(ctx, store.SnapshotFilter{TeamID: teamID, Name: name, Limit: 1})
	if err != nil {
		return store.Snapshot{}, err
	}
	if len(list) == 0 {
		return store.Snapshot{}, errdefs.NotFound("snapshot %q not found", ref)
	}
	return list[0], nil
}

// SnapshotFilter selects a team's snapshots for ListSnapshots.
type SnapshotFilter struct {
	CapsuleID string
	// Name is "name" or "name:tag".
	Name   string
	Limit  int
	Cursor string
}

// MaxSnapshotPage is the largest page ListSnapshots returns.
const MaxSnapshotPage = 100

// ListSnapshots returns a page of a team's snapshots, newest first. A
// name that cannot be a snapshot's matches none; a limit outside 0 to
// MaxSnapshotPage (zero is MaxSnapshotPage) and a bad cursor are
// errdefs.ErrInvalid.
func (s *Service) ListSnapshots(ctx context.Context, teamID string, f SnapshotFilter) (nestbox.SnapshotList, error) {
	if f.Limit < 0 || f.Limit > MaxSnapshotPage {
		return nestbox.SnapshotList{}, errdefs.Invalid("limit %d: want 1 to %d", f.Limit, MaxSnapshotPage)
	}
	sf := store.SnapshotFilter{TeamID: teamID, CapsuleID: f.CapsuleID, Limit: f.Limit, Cursor: f.Cursor}
	if sf.Limit == 0 {
		sf.Limit = MaxSnapshotPage
	}
	out := nestbox.SnapshotList{Snapshots: []nestbox.Snapshot{}}
	if f.Name != "" {
		name, err := ParseSnapshotName(f.Name)
		if err != nil {
			return out, nil
		}
		sf.Name = name
	}
	list, next, err := s.store.ListSnapshots(ctx, sf)
	if err != nil {
		return out, err
	}
	for _, sn := range list {
		out.Snapshots = append(out.Snapshots, sn.Snapshot)
	}
	out.NextCursor = next
	return out, nil
}

// DeleteSnapshot removes a snapshot of team from its host and then its
// row. Capsules started from it are not touched (each has its own copy of
// the layer and of the memory it restored). A snapshot being created, or
// one that backs a template (delete the template first), is
// errdefs.ErrConflict; a host that cannot be reached leaves the snapshot
// as it was and is errdefs.ErrUnavailable.
func (s *Service) DeleteSnapshot(ctx context.Context, teamID, ref string) error {
	sn, err := s.snapshot(ctx, teamID, ref)
	if err != nil {
		return err
	}
	if sn.TemplateName != "" {
		return errdefs.Conflict("snapshot %s backs template %q: delete the template first", sn.ID, sn.TemplateName)
	}
	from := []nestbox.SnapshotStatus{nestbox.SnapshotReady, nestbox.SnapshotError}
	prev := sn.Status
	sn, err = s.store.UpdateSnapshot(ctx, sn.ID, from, store.SnapshotUpdate{To: nestbox.SnapshotDeleting, At: s.cfg.Now().UTC()})
	if err != nil {
		return err
	}
	if err := s.deleteOnHost(ctx, sn); err != nil {
		// Undo the mark: the snapshot is still there.
		if _, uerr := s.store.UpdateSnapshot(context.WithoutCancel(ctx), sn.ID, []nestbox.SnapshotStatus{nestbox.SnapshotDeleting}, store.SnapshotUpdate{To: prev, Error: sn.Error}); uerr != nil {
			s.log.Error("restore a snapshot whose delete failed", "snapshot", sn.ID, "err", uerr)
		}
		return err
	}
	if err := s.store.DeleteSnapshot(context.WithoutCancel(ctx), sn.ID); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", sn.ID, err)
	}
	return nil
}

// deleteOnHost deletes snapshot sn on its host. A host this control plane
// no longer knows took the snapshot with it: nothing to do.
func (s *Service) deleteOnHost(ctx context.Context, sn store.Snapshot) error {
	h, err := s.hosts.Get(sn.HostID)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return errdefs.Unavailable("host %s of snapshot %s: %v", sn.HostID, sn.ID, err)
	}
	cctx, cancel := s.callContext(ctx, callDestroy)
	defer cancel()
	if _, err := h.Agent.DeleteSnapshot(cctx, connect.NewRequest(&agentpb.DeleteSnapshotRequest{Id: sn.ID})); err != nil {
		return fmt.Errorf("delete snapshot %s on host %s: %w", sn.ID, h.ID, errdefs.FromConnect(err))
	}
	return nil
}
