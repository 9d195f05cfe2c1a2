package lifecycle_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	. "nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/lifecycle/fakehost"
	"nestbox.dev/internal/proto/agentpb"
)

// templateAgent is a fake agent that offers the templates in offer and
// counts its ListTemplates calls.
type templateAgent struct {
	*fakehost.Agent

	mu    sync.Mutex
	offer []string
	lists int
}

func (a *templateAgent) ListTemplates(ctx context.Context, req *connect.Request[agentpb.ListTemplatesRequest]) (*connect.Response[agentpb.ListTemplatesResponse], error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lists++
	resp := &agentpb.ListTemplatesResponse{}
	for _, name := range a.offer {
		resp.Templates = append(resp.Templates, &agentpb.Template{Name: name, Built: true, SizeBytes: 1 << 20})
	}
	return connect.NewResponse(resp), nil
}

func (a *templateAgent) set(offer ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.offer = offer
}

func (a *templateAgent) calls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lists
}

// TestTemplateCheckCached: creates of an offered template within a second
// of the last read ask no host; a template not in that read is looked up
// at once, so one just built is admitted; after a second, the hosts are
// asked again.
func TestTemplateCheckCached(t *testing.T) {
	clk := &clock{now: time.Now()}
	ag := &templateAgent{Agent: fakehost.New(), offer: []string{"base"}}
	f := newFixture(t, unlimited, func(c *Config) {
		c.Now = clk.Now
		c.Hosts = fakehost.Hosts{Host: Host{ID: "h1", Agent: ag}}
	})
	ctx := context.Background()
	create := func(template string) error {
		_, err := f.svc.Create(ctx, team, nestbox.CreateCapsuleRequest{Template: template})
		return err
	}
	for _, step := range []struct {
		name     string
		template string
		offer    []string      // set before the create, if not nil
		advance  time.Duration // of the clock, before the create
		wantErr  error
		lists    int // ListTemplates calls after the create
	}{
		{name: "first create", template: "base", lists: 1},
		{name: "second create within the second", template: "base", advance: 500 * time.Millisecond, lists: 1},
		{name: "unknown template", template: "new", wantErr: errdefs.ErrNotFound, lists: 2},
		{name: "template just built", template: "new", offer: []string{"base", "new"}, lists: 3},
		{name: "create a second later", template: "base", advance: time.Second, lists: 4},
	} {
		if step.offer != nil {
			ag.set(step.offer...)
		}
		clk.Add(step.advance)
		if err := create(step.template); !errors.Is(err, step.wantErr) {
			t.Fatalf("%s: create of %q: %v, want %v", step.name, step.template, err, step.wantErr)
		}
		if got := ag.calls(); got != step.lists {
			t.Errorf("%s: %d ListTemplates calls, want %d", step.name, got, step.lists)
		}
	}
}
