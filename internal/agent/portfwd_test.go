package agent

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"nestbox.dev/internal/proto/agentpb"
)

// TestLoopbackServiceReachable runs a web server that listens on 127.0.0.1
// only inside the sandbox: envd's port forwarder must make it reachable on
// the sandbox's address, and so through the agent's proxy.
func TestLoopbackServiceReachable(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", nil)
	sb := ta.create(t, &agentpb.SandboxConfig{})
	pc := ta.process(sb.Id, "", "")
	mustSh(t, pc, "mkdir -p /tmp/lo && echo loopback-only > /tmp/lo/index.html && (httpd -f -p 127.0.0.1:8090 -h /tmp/lo >/dev/null 2>&1 &)")
	if out := mustSh(t, pc, "netstat -ltn | grep ':8090 ' || true"); !strings.Contains(out, "127.0.0.1:8090") || strings.Contains(out, "0.0.0.0:8090") {
		t.Fatalf("want a loopback-only listener, netstat shows %q", out)
	}
	url := ta.base + "/proxy/" + sb.Id + "/8090/"
	var code int
	var body string
	// The forwarder scans every second; the proxy retries dials briefly.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := authClient.Get(url)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		code, body = resp.StatusCode, string(b)
		if code == http.StatusOK {
			break
		}
	}
	if code != http.StatusOK || body != "loopback-only\n" {
		t.Fatalf("loopback-only service through the proxy: %d %q", code, body)
	}
	ta.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}
