package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/driver/gvisor"
	"nestbox.dev/internal/proto/agentpb"
)

// TestDestroyWithHungRunsc makes runsc hang on delete (a wrapper script
// around the real one sleeps instead while a marker file exists): the
// destroy fails with deadline_exceeded once the driver's command timeout
// has passed, instead of blocking; the sandbox is not stuck: once runsc
// answers again, a second destroy removes everything.
func TestDestroyWithHungRunsc(t *testing.T) {
	h := newTestHost(t)
	marker := filepath.Join(t.TempDir(), "hang")
	wrapper := filepath.Join(t.TempDir(), "runsc")
	script := "#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = delete ] && [ -e " + marker + " ]; then exec sleep 600; fi\ndone\nexec " + h.p.runsc + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ta := h.startAgent(t, "", func(c *Config) {
		d, err := gvisor.New(gvisor.Config{Runsc: wrapper, Root: filepath.Join(c.DataDir, "runsc"), CgroupParent: c.CgroupParent,
			CommandTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		c.Driver = d
	})
	sb := ta.create(t, &agentpb.SandboxConfig{})
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := ta.client.DestroySandbox(ctx, connect.NewRequest(&agentpb.DestroySandboxRequest{Id: sb.Id}))
	if connect.CodeOf(err) != connect.CodeDeadlineExceeded {
		t.Fatalf("destroy with a hung runsc: %v, want deadline_exceeded", err)
	}
	t.Logf("destroy with a hung runsc: %v", err)
	os.Remove(marker)
	ta.destroyRPC(t, sb.Id)
	if ta.lookup(sb.Id) != nil {
		t.Error("the sandbox is still registered after the second destroy")
	}
	assertClean(t, h.dataDir)
}
