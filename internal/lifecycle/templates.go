package lifecycle

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
)

// Templates lists the templates capsules can start from: those any host
// offers. A template not built yet is listed with size zero; the first
// create builds it.
func (s *Service) Templates(ctx context.Context) ([]nestbox.Template, error) {
	byName := map[string]nestbox.Template{}
	var lastErr error
	for _, h := range s.hosts.All() {
		resp, err := h.Agent.ListTemplates(ctx, connect.NewRequest(&agentpb.ListTemplatesRequest{}))
		if err != nil {
			lastErr = fmt.Errorf("templates of host %s: %w", h.ID, errdefs.FromConnect(err))
			continue
		}
		for _, t := range resp.Msg.GetTemplates() {
			cur, seen := byName[t.GetName()]
			if seen && cur.SizeBytes >= t.GetSizeBytes() {
				continue
			}
			out := nestbox.Template{Name: t.GetName(), Description: t.GetDescription(), SizeBytes: t.GetSizeBytes()}
			if t.GetBuiltAt() != nil && t.GetBuilt() {
				out.CreatedAt = t.GetBuiltAt().AsTime().UTC()
			}
			byName[t.GetName()] = out
		}
	}
	if len(byName) == 0 && lastErr != nil {
		return nil, lastErr
	}
	out := make([]nestbox.Template, 0, len(byName))
	for _, t := range byName {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b nestbox.Template) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
