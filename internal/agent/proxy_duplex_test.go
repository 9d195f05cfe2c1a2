package agent

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"nestbox.dev/internal/network"
)

// TestProxyKeepsResponsesWhole sends many requests with a Content-Length
// body through the proxy to a server that answers as soon as it has read
// the body and goes on streaming. Without full duplex, the agent's HTTP/1
// server closes the request body when the response starts, the proxy
// transport's final read of it fails, and the transport cuts the answer
// mid-stream (golang.org/issue/40747). Needs no root: the "sandbox" is a
// local server.
func TestProxyKeepsResponsesWhole(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("first\n"))
		w.(http.Flusher).Flush()
		time.Sleep(2 * time.Millisecond)
		w.Write([]byte("second\n"))
	}))
	defer backend.Close()
	_, portStr, _ := net.SplitHostPort(backend.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)

	a := &Agent{cfg: Config{Token: testToken}, log: testLogger(), net: kernelNetwork{}, sandboxes: map[string]*sandbox{}}
	sb := &sandbox{id: "local", status: statusRunning, net: network.Sandbox{GuestIP: netip.MustParseAddr("127.0.0.1")}}
	sb.proxy = newSandboxProxy(a, sb)
	a.sandboxes[sb.id] = sb
	front := httptest.NewServer(a.Handler())
	defer front.Close()
	url := front.URL + "/proxy/local/" + strconv.Itoa(port) + "/stream"

	var (
		wg  sync.WaitGroup
		bad atomic.Int32
	)
	body := bytes.Repeat([]byte("x"), 512)
	sem := make(chan struct{}, 32)
	for range 3000 {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			resp, err := authClient.Post(url, "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				bad.Add(1)
				return
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(got) != "first\nsecond\n" {
				if bad.Add(1) == 1 {
					t.Errorf("cut response: %q, %v", got, err)
				}
			}
		})
	}
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Errorf("%d of 3000 responses cut", n)
	}
}
