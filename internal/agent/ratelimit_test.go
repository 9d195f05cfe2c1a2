package agent

import (
	"context"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"nestbox.dev/internal/proto/agentpb"
)

// TestEgressRateLimit checks that the egress limit really holds back what a
// gVisor sandbox sends, without asserting a timing: after a 32 MiB upload
// at 6 MiB/s with a 1 MiB burst, the sandbox's shaper must have carried
// the upload (its byte counter) and held packets back (its overlimits
// counter). Unshaped traffic, or traffic that bypassed the shaper, leaves
// one of the two near zero (checked: at a 4000 MiB/s limit the same upload
// shows 0 overlimits and the test fails). The limit is well below what a
// sandbox sends even on a loaded machine (8 MiB/s measured while the whole
// suite ran; at 20 MiB/s the sender was then too slow to meet the limit).
// The time taken is only logged.
func TestEgressRateLimit(t *testing.T) {
	h := newTestHost(t)
	url := startExternal(t)
	ta := h.startAgent(t, "", func(c *Config) {
		c.EgressRateBytes = 6 << 20
		c.EgressBurstBytes = 1 << 20
	})
	sb := ta.create(t, &agentpb.SandboxConfig{Internet: true})
	pc := ta.process(sb.Id, "", "")
	const size = 32 << 20
	mustSh(t, pc, "head -c 33554432 /dev/zero > /tmp/blob")
	host := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), ":8080/")
	// busybox wget does not send large POST bodies; write the request by
	// hand. The server answers after reading the whole body.
	cmd := "{ printf 'POST / HTTP/1.0\\r\\nContent-Length: 33554432\\r\\n\\r\\n'; cat /tmp/blob; } | nc " + host + " 8080 | head -1"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	out, code, err := sh(ctx, pc, cmd)
	if err != nil || code != 0 || !strings.Contains(out, "200 OK") {
		t.Fatalf("upload: exit %d, %v, %q", code, err, out)
	}
	t.Logf("%d bytes at 6 MiB/s took %s", size, time.Since(start))

	// One sandbox on a fresh agent: its shaper is the only IFB device
	// with the test prefix.
	links, _ := net.Interfaces()
	var stats string
	for _, l := range links {
		if strings.HasPrefix(l.Name, testPrefix+"i") {
			b, _ := exec.Command("tc", "-s", "qdisc", "show", "dev", l.Name).CombinedOutput()
			stats = string(b)
		}
	}
	m := regexp.MustCompile(`Sent (\d+) bytes \d+ pkt \(dropped \d+, overlimits (\d+)`).FindStringSubmatch(stats)
	if m == nil {
		t.Fatalf("no shaper statistics found:\n%s", stats)
	}
	sent, _ := strconv.ParseInt(m[1], 10, 64)
	overlimits, _ := strconv.ParseInt(m[2], 10, 64)
	if sent < size || overlimits == 0 {
		t.Fatalf("shaper carried %d bytes with %d overlimits, want >= %d bytes and some overlimits:\n%s", sent, overlimits, size, stats)
	}
	ta.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}
