package agent

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/agentpb"
)

// TestConcurrentCreateDestroy creates 20 sandboxes at once (some IDs
// twice), checks that every one runs and is recorded, destroys them all at
// once (each twice), and checks that nothing is left.
func TestConcurrentCreateDestroy(t *testing.T) {
	const n = 20
	h := newTestHost(t)
	ta := h.startAgent(t, "", nil)
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("conc%016d", i)
	}

	var (
		wg        sync.WaitGroup
		created   atomic.Int32
		conflicts atomic.Int32
	)
	for i := range n + 3 {
		id := ids[i%n] // the first three IDs are created twice at once
		wg.Go(func() {
			_, err := ta.client.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: testSpec(&agentpb.SandboxConfig{Id: id})}))
			switch {
			case err == nil:
				created.Add(1)
			case connect.CodeOf(err) == connect.CodeAlreadyExists:
				conflicts.Add(1)
			default:
				t.Errorf("create %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	if created.Load() != n || conflicts.Load() != 3 {
		t.Fatalf("%d created, %d conflicts; want %d and 3", created.Load(), conflicts.Load(), n)
	}
	if got := len(ta.list()); got != n {
		t.Fatalf("%d sandboxes listed, want %d", got, n)
	}
	for _, id := range ids {
		wg.Go(func() {
			sb := ta.lookup(id)
			if sb == nil {
				t.Errorf("%s not registered", id)
				return
			}
			if _, err := readState(sb.dir); err != nil {
				t.Errorf("state of %s: %v", id, err)
			}
			if _, err := shOK(ta.process(id, "", ""), "true"); err != nil {
				t.Errorf("sandbox %s: %v", id, err)
			}
		})
	}
	wg.Wait()

	for i := range 2 * n {
		id := ids[i%n]
		wg.Go(func() {
			if _, err := ta.client.DestroySandbox(ctx, connect.NewRequest(&agentpb.DestroySandboxRequest{Id: id})); err != nil {
				t.Errorf("destroy %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	if got := len(ta.list()); got != 0 {
		t.Errorf("%d sandboxes listed after destroying all", got)
	}

	// A destroy racing the create of the same ID: the destroy either
	// finds nothing (and the sandbox lives) or waits for the create and
	// removes the sandbox; nothing is half-done either way.
	for i := range 4 {
		id := fmt.Sprintf("race%016d", i)
		wg.Go(func() {
			_, err := ta.client.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: testSpec(&agentpb.SandboxConfig{Id: id})}))
			if err != nil {
				t.Errorf("create %s: %v", id, err)
			}
		})
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 50 * time.Millisecond)
			if _, err := ta.client.DestroySandbox(ctx, connect.NewRequest(&agentpb.DestroySandboxRequest{Id: id})); err != nil {
				t.Errorf("destroy %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	for _, sb := range ta.list() {
		mustSh(t, ta.process(sb.Id, "", ""), "true")
		ta.destroyRPC(t, sb.Id)
	}
	assertClean(t, h.dataDir)
}
