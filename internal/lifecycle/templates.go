package lifecycle

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

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
		cctx, cancel := s.callContext(ctx, callQuery)
		resp, err := h.Agent.ListTemplates(cctx, connect.NewRequest(&agentpb.ListTemplatesRequest{}))
		cancel()
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

// templateCacheTTL is how long checkTemplate trusts the set of templates
// it last read, so that a burst of creates costs one ListTemplates per host
// rather than one each.
const templateCacheTTL = time.Second

// templateCache holds the names of the templates the hosts offered when
// last asked. The zero value is empty; it is safe for concurrent use.
type templateCache struct {
	// mu guards names and at.
	mu    sync.Mutex
	names map[string]bool
	at    time.Time // when names was read
}

// has reports whether name was offered at the last read, if that is less
// than templateCacheTTL before now.
func (c *templateCache) has(name string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.names[name] && now.Sub(c.at) < templateCacheTTL
}

func (c *templateCache) set(ts []nestbox.Template, now time.Time) {
	names := make(map[string]bool, len(ts))
	for _, t := range ts {
		names[t.Name] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names, c.at = names, now
}

// checkTemplate refuses, with errdefs.ErrNotFound, a template no host
// offers, so that a create for it fails at once rather than in the
// background. A template offered at a read less than templateCacheTTL ago
// is taken as offered still; any other name is looked up at once, so a
// template just built is never refused.
func (s *Service) checkTemplate(ctx context.Context, name string) error {
	if s.offered.has(name, s.cfg.Now()) {
		return nil
	}
	ts, err := s.Templates(ctx)
	if err != nil {
		return fmt.Errorf("check template %q: %w", name, err)
	}
	s.offered.set(ts, s.cfg.Now())
	if !slices.ContainsFunc(ts, func(t nestbox.Template) bool { return t.Name == name }) {
		return errdefs.NotFound("template %q not found", name)
	}
	return nil
}
