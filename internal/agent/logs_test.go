package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nestbox.dev/internal/proto/agentpb"
)

// TestConsoleLogCapped has a sandbox print 8 MiB to its console (envd's
// stdout, a file on the host): the host-side log lives on the sandbox's
// writable layer (so its disk limit bounds it), not in the sandbox
// directory, and the monitor cuts it back under the cap, keeping the tail.
func TestConsoleLogCapped(t *testing.T) {
	const cap = 1 << 20
	h := newTestHost(t)
	ta := h.startAgent(t, "", func(c *Config) { c.LogMaxBytes = cap })
	sb := ta.create(t, &agentpb.SandboxConfig{})
	rec := ta.lookup(sb.Id)
	console := filepath.Join(logDir(rec), "console.log")
	if !strings.HasPrefix(console, rec.layer.UpperMount+"/") {
		t.Fatalf("console log %s is not on the writable layer %s", console, rec.layer.UpperMount)
	}
	if _, err := os.Stat(filepath.Join(rec.dir, "console.log")); !os.IsNotExist(err) {
		t.Errorf("a console log in the sandbox directory: %v", err)
	}
	// The sandbox cannot see it.
	pc := ta.process(sb.Id, "", "root")
	if out := mustSh(t, pc, "ls /logs /upper 2>&1; echo done"); !strings.HasSuffix(out, "done\n") || strings.Contains(out, "console") {
		t.Errorf("the sandbox sees its host-side logs: %q", out)
	}
	mustSh(t, pc, "head -c 8388608 /dev/zero | tr '\\000' x > /proc/1/fd/1; echo END-OF-BURST > /proc/1/fd/1")

	var size int64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		st, err := os.Stat(console)
		if err != nil {
			t.Fatal(err)
		}
		size = st.Size()
		if _, err := os.Stat(console + ".1"); err == nil && size <= cap {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("console log is %d bytes after 30 s, cap %d", size, cap)
		}
	}
	old, err := os.ReadFile(console + ".1")
	if err != nil || len(old) > cap/4 || len(old) == 0 {
		t.Errorf("rotated log: %d bytes, %v; want 1..%d", len(old), err, cap/4)
	}
	t.Logf("console log %d bytes, rotated %d bytes (cap %d)", size, len(old), cap)
	ta.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}
