package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/store"
)

// CreateTemplate makes a ready snapshot of team the template name of that
// team: a create that names the template starts from the snapshot. The
// name is a template name as capsulespec.ValidTemplateName has it (else
// errdefs.ErrInvalid); one a host offers, or another snapshot has,
// is errdefs.ErrAlreadyExists; a snapshot that is not ready
// errdefs.ErrConflict. A snapshot backs at most one template: making
// another renames it; making the same again changes nothing.
func (s *Service) CreateTemplate(ctx context.Context, teamID, name, fromSnapshot string) (nestbox.Template, error) {
	if !capsulespec.ValidTemplateName(name) {
		return nestbox.Template{}, errdefs.Invalid("template name %q: want up to %d lower-case letters, digits, '.', '_' or '-'", name, capsulespec.MaxTemplateName)
	}
	if fromSnapshot == "" {
		return nestbox.Template{}, errdefs.Invalid("from_snapshot is required: templates are made from snapshots")
	}
	sn, err := s.snapshot(ctx, teamID, fromSnapshot)
	if err != nil {
		return nestbox.Template{}, err
	}
	offered, err := s.Templates(ctx)
	if err != nil {
		return nestbox.Template{}, err
	}
	if slices.ContainsFunc(offered, func(t nestbox.Template) bool { return t.Name == name }) {
		return nestbox.Template{}, errdefs.AlreadyExists("template %q is a host's template", name)
	}
	if err := s.store.SetSnapshotTemplate(ctx, sn.ID, name); err != nil {
		return nestbox.Template{}, err
	}
	sn.TemplateName = name
	return templateOf(sn), nil
}

// DeleteTemplate removes template name of team, made from a snapshot; the
// snapshot stays. A host's template cannot be deleted
// (errdefs.ErrConflict); an unknown name is errdefs.ErrNotFound.
func (s *Service) DeleteTemplate(ctx context.Context, teamID, name string) error {
	sn, err := s.templateSnapshot(ctx, teamID, name)
	if errors.Is(err, errdefs.ErrNotFound) {
		if offered, terr := s.Templates(ctx); terr == nil && slices.ContainsFunc(offered, func(t nestbox.Template) bool { return t.Name == name }) {
			return errdefs.Conflict("template %q is a host's template: only templates made from snapshots can be deleted", name)
		}
	}
	if err != nil {
		return err
	}
	if err := s.store.SetSnapshotTemplate(ctx, sn.ID, ""); err != nil {
		return err
	}
	if sn.PoolSize > 0 {
		if err := s.pushPools(ctx, sn.HostID); err != nil {
			s.log.Warn("template deleted; its host drops its warm pool at the next reconcile", "template", name, "host", sn.HostID, "err", err)
		}
	}
	return nil
}

// TeamTemplates lists the templates a team's capsules can start from: the
// hosts' (Templates) and the team's own, made from snapshots, by name.
func (s *Service) TeamTemplates(ctx context.Context, teamID string) ([]nestbox.Template, error) {
	out, err := s.Templates(ctx)
	if err != nil {
		return nil, err
	}
	f := store.SnapshotFilter{TeamID: teamID, Limit: 1000}
	for {
		list, next, err := s.store.ListSnapshots(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, sn := range list {
			if sn.TemplateName != "" {
				out = append(out, templateOf(sn))
			}
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	slices.SortFunc(out, func(a, b nestbox.Template) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func templateOf(sn store.Snapshot) nestbox.Template {
	return nestbox.Template{
		Name:        sn.TemplateName,
		Description: "from snapshot " + sn.ID + " of capsule " + sn.CapsuleID,
		SizeBytes:   sn.SizeBytes,
		CreatedAt:   sn.CreatedAt,
		SnapshotID:  sn.ID,
		PoolSize:    sn.PoolSize,
	}
}

// MaxTemplatePool caps one template's warm pool, as the agent does.
const MaxTemplatePool = 256

// SetTemplatePool sets the warm pool of template name of team, made from
// a snapshot: its host keeps size sandboxes restored from the snapshot
// and idle, and a create of the template claims one (milliseconds
// instead of a restore). The pools of a team's templates together keep
// at most Limits.TeamPooled sandboxes (errdefs.ErrExhausted past it); a
// host's template is errdefs.ErrConflict (its pools are the agent's
// --pool), an unknown name errdefs.ErrNotFound. The size is stored and
// sent to the host at once; a host that cannot be reached gets it at its
// next reconcile, and the template is returned either way.
func (s *Service) SetTemplatePool(ctx context.Context, teamID, name string, size int) (nestbox.Template, error) {
	if size < 0 || size > MaxTemplatePool {
		return nestbox.Template{}, errdefs.Invalid("pool size %d: want 0 to %d", size, MaxTemplatePool)
	}
	if s.cfg.TeamPooled < 0 && size > 0 {
		return nestbox.Template{}, fmt.Errorf("this platform keeps no warm pools of teams' templates: %w", errdefs.ErrExhausted)
	}
	sn, err := s.templateSnapshot(ctx, teamID, name)
	if errors.Is(err, errdefs.ErrNotFound) {
		if offered, terr := s.Templates(ctx); terr == nil && slices.ContainsFunc(offered, func(t nestbox.Template) bool { return t.Name == name }) {
			return nestbox.Template{}, errdefs.Conflict("template %q is a host's template: its warm pools are set on the host (nestbox agent --pool)", name)
		}
	}
	if err != nil {
		return nestbox.Template{}, err
	}
	if err := s.store.SetSnapshotPool(ctx, sn.ID, size, max(s.cfg.TeamPooled, 0)); err != nil {
		return nestbox.Template{}, err
	}
	sn.PoolSize = size
	if err := s.pushPools(ctx, sn.HostID); err != nil {
		s.log.Warn("warm pool of a template stored; its host gets it at the next reconcile", "template", name, "snapshot", sn.ID, "host", sn.HostID, "err", err)
	}
	return templateOf(sn), nil
}

// pushPools sends host hostID the warm pools of the templates whose
// snapshots it keeps.
func (s *Service) pushPools(ctx context.Context, hostID string) error {
	h, err := s.hosts.Get(hostID)
	if err != nil {
		return err
	}
	var rows []store.Snapshot
	f := store.SnapshotFilter{HostID: hostID, Statuses: []nestbox.SnapshotStatus{nestbox.SnapshotReady}, Limit: 1000}
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
	return s.setHostPools(ctx, h, rows)
}

// setHostPools sends h the pools of rows, the ready snapshots it keeps.
// An agent that knows no pools of snapshots (unimplemented) is no error.
func (s *Service) setHostPools(ctx context.Context, h Host, rows []store.Snapshot) error {
	req := &agentpb.SetSnapshotPoolsRequest{}
	for _, sn := range rows {
		if sn.PoolSize > 0 && sn.TemplateName != "" && sn.Status == nestbox.SnapshotReady {
			req.Pools = append(req.Pools, &agentpb.SnapshotPool{SnapshotId: sn.ID, Size: uint32(sn.PoolSize)})
		}
	}
	cctx, cancel := s.callContext(ctx, callQuery)
	defer cancel()
	_, err := h.Agent.SetSnapshotPools(cctx, connect.NewRequest(req))
	if err = errdefs.FromConnect(err); err != nil && !errors.Is(err, errdefs.ErrUnimplemented) {
		return fmt.Errorf("set the warm pools of host %s: %w", h.ID, err)
	}
	return nil
}

// templateSnapshot returns the snapshot behind template name of team.
func (s *Service) templateSnapshot(ctx context.Context, teamID, name string) (store.Snapshot, error) {
	if name == "" {
		return store.Snapshot{}, errdefs.NotFound("template %q not found", name)
	}
	list, _, err := s.store.ListSnapshots(ctx, store.SnapshotFilter{TeamID: teamID, TemplateName: name, Limit: 1})
	if err != nil {
		return store.Snapshot{}, err
	}
	if len(list) == 0 {
		return store.Snapshot{}, errdefs.NotFound("template %q not found", name)
	}
	return list[0], nil
}

// resolveTemplate says what a create's template names: a template of the
// team made from a snapshot, a snapshot of the team by ID ("<id>" or
// "<id>:default") or by "name:tag", a template a host offers, or a
// snapshot by name (tag "default"), in that order. It returns the
// snapshot, or nil for a host's template. Neither is errdefs.ErrNotFound.
func (s *Service) resolveTemplate(ctx context.Context, teamID, name string) (*store.Snapshot, error) {
	sn, err := s.templateSnapshot(ctx, teamID, name)
	if err == nil {
		return &sn, nil
	}
	if !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	if strings.Contains(name, ":") || capsulespec.ValidID(name) {
		if sn, err := s.snapshot(ctx, teamID, name); err == nil {
			return &sn, nil
		} else if !errors.Is(err, errdefs.ErrNotFound) {
			return nil, err
		}
	}
	terr := s.checkTemplate(ctx, name)
	if terr == nil || !errors.Is(terr, errdefs.ErrNotFound) {
		return nil, terr
	}
	if sn, err := s.snapshot(ctx, teamID, name); err == nil {
		return &sn, nil
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	return nil, terr
}
