package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"nestbox.dev/internal/proto/agentpb"
)

// TestProxy checks the port proxy against a web server in a sandbox: the
// dial is retried while the server starts, paths keep their trailing
// slashes, redirects point back through the proxy, and a closed port is a
// JSON 502.
func TestProxy(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", nil)
	sb := ta.create(t, &agentpb.SandboxConfig{})
	pc := ta.process(sb.Id, "", "")
	// The server starts after the command returns: the first requests
	// find the port closed.
	mustSh(t, pc, "mkdir -p /tmp/www/dir && echo hello > /tmp/www/dir/index.html && (sleep 0.3; exec httpd -f -p 8080 -h /tmp/www) >/dev/null 2>&1 &")
	base := ta.base + "/proxy/" + sb.Id + "/8080"

	if code, body := httpGet(t, authClient, base+"/dir/"); code != http.StatusOK || body != "hello\n" {
		t.Errorf("GET dir/ while the server starts: %d %q", code, body)
	}
	noRedirect := &http.Client{Transport: agentAuth{}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(base + "/dir")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "/proxy/" + sb.Id + "/8080/dir/"; resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
		t.Errorf("redirect of dir: %d to %q, want 302 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	// Following it lands on the directory through the proxy.
	if code, body := httpGet(t, authClient, base+"/dir"); code != http.StatusOK || body != "hello\n" {
		t.Errorf("GET dir following redirects: %d %q", code, body)
	}

	code, body := httpGet(t, authClient, ta.base+"/proxy/"+sb.Id+"/8081/")
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	json.Unmarshal([]byte(body), &e)
	if code != http.StatusBadGateway || e.Code != 502 || !strings.Contains(e.Message, "port is not open") {
		t.Errorf("closed port: %d %s", code, body)
	}
	resp, err = authClient.Get(ta.base + "/proxy/" + sb.Id + "/notaport/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("invalid port: %d", resp.StatusCode)
	}
	ta.destroyRPC(t, sb.Id)
	assertClean(t, h.dataDir)
}

// TestProxyStreams runs many short Connect streams through the proxy at
// once: each must arrive whole (a proxy that cuts the upload when the
// response starts truncates some of them).
func TestProxyStreams(t *testing.T) {
	h := newTestHost(t)
	ta := h.startAgent(t, "", nil)
	sb := ta.create(t, &agentpb.SandboxConfig{})
	pc := ta.process(sb.Id, "", "")
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range 200 {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			want := fmt.Sprintf("n%d\n", i)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if out, code, err := sh(ctx, pc, "echo n"+fmt.Sprint(i)); err != nil || code != 0 || out != want {
				t.Errorf("stream %d: %q, exit %d, %v", i, out, code, err)
			}
		})
	}
	wg.Wait()
	ta.destroyRPC(t, sb.Id)
}

// TestServerConfig guards the HTTP server's settings.
func TestServerConfig(t *testing.T) {
	a := &Agent{log: testLogger(), sandboxes: map[string]*sandbox{}}
	srv := a.Server("127.0.0.1:0")
	if srv.ReadHeaderTimeout != 10e9 || srv.IdleTimeout != 620e9 {
		t.Errorf("timeouts: read header %s, idle %s", srv.ReadHeaderTimeout, srv.IdleTimeout)
	}
	if p := srv.Protocols; p == nil || !p.HTTP1() || p.HTTP2() || p.UnencryptedHTTP2() {
		t.Errorf("protocols %v, want HTTP/1 only", p)
	}
	p := newSandboxProxy(a, &sandbox{id: "x"})
	if pr := p.transport.Protocols; pr == nil || !pr.HTTP1() || pr.HTTP2() || pr.UnencryptedHTTP2() {
		t.Errorf("proxy transport protocols %v, want HTTP/1 only", pr)
	}
	if p.forPort(80).FlushInterval != -1 {
		t.Error("proxy does not flush at once")
	}
}
