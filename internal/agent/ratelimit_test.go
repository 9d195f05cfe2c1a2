package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"nestbox.dev/internal/proto/agentpb"
)

// TestEgressRateLimit checks that the egress limit really holds back what a
// gVisor sandbox sends. With 20 MiB/s and a 4 MiB burst, sending 64 MiB
// takes at least 3 s; unlimited it takes well under a second here (seen:
// 0.9 s for the whole test), shaped 3.2 s. The test asserts the lower
// bound only, with a margin: a functional check, not a performance one.
func TestEgressRateLimit(t *testing.T) {
	h := newTestHost(t)
	url := startExternal(t)
	ta := h.startAgent(t, "", func(c *Config) {
		c.EgressRateBytes = 20 << 20
		c.EgressBurstBytes = 4 << 20
	})
	sb := ta.create(t, &agentpb.SandboxConfig{Internet: true})
	pc := ta.process(sb.Id, "", "")
	const size = 64 << 20
	mustSh(t, pc, "head -c 67108864 /dev/zero > /tmp/blob")
	host := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), ":8080/")
	// busybox wget does not send large POST bodies; write the request by
	// hand. The server answers after reading the whole body.
	cmd := "{ printf 'POST / HTTP/1.0\\r\\nContent-Length: 67108864\\r\\n\\r\\n'; cat /tmp/blob; } | nc " + host + " 8080 | head -1"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	out, code, err := sh(ctx, pc, cmd)
	took := time.Since(start)
	if err != nil || code != 0 || !strings.Contains(out, "200 OK") {
		t.Fatalf("upload: exit %d, %v, %q", code, err, out)
	}
	t.Logf("%d bytes at 20 MiB/s took %s", size, took)
	if took < 2500*time.Millisecond {
		t.Fatalf("64 MiB left a sandbox limited to 20 MiB/s in %s", took)
	}
	ta.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}
