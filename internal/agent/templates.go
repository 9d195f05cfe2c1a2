package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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

// TemplatesToBuild returns those of names whose current version is not
// built yet: the ones EnsureTemplates would build.
func (a *Agent) TemplatesToBuild(names ...string) []string {
	var out []string
	for _, name := range names {
		if _, err := a.templates.Get(name); err != nil {
			out = append(out, name)
		}
	}
	return out
}

// templatesHeld lists the template versions (rootfs paths) that this
// host's sandboxes and snapshots use, read from their state files (and
// the snapshots' metadata) so that it holds before adoption and for
// paused sandboxes, whose overlays may not be mounted: the template store
// never prunes these.
func (a *Agent) templatesHeld() ([]string, error) {
	held := a.snapshotTemplates()
	entries, err := os.ReadDir(a.sandboxesDir())
	if errors.Is(err, os.ErrNotExist) {
		return held, nil
	}
	if err != nil {
		return nil, fmt.Errorf("templates in use: %w", err)
	}
	for _, e := range entries {
		rec, err := readState(filepath.Join(a.sandboxesDir(), e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // being created or removed: not yet or no longer a holder
		}
		if err != nil {
			return nil, fmt.Errorf("templates in use: %w", err)
		}
		if rec.Template != "" {
			held = append(held, rec.Template)
		}
	}
	return held, nil
}
