package agent

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/template"
)

// listTemplates reports every template this host can start sandboxes
// from, with size and build time once built.
func (a *Agent) listTemplates() []*agentpb.Template {
	var out []*agentpb.Template
	for _, name := range template.Names() {
		t := &agentpb.Template{Name: name, Description: template.Describe(name)}
		if info, err := a.templates.Get(name); err == nil {
			t.Built, t.SizeBytes, t.BuiltAt = true, info.SizeBytes, timestamppb.New(info.BuiltAt)
		}
		out = append(out, t)
	}
	return out
}

// EnsureTemplates builds the named templates that are not built yet, one
// after another, reporting progress to Config.Progress. A platform that
// starts with this never makes its first capsule wait for a build.
func (a *Agent) EnsureTemplates(ctx context.Context, names ...string) error {
	for _, name := range names {
		if _, err := a.templates.Ensure(ctx, name); err != nil {
			return fmt.Errorf("template %s: %w", name, err)
		}
	}
	return nil
}
