package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/agentpb/agentpbconnect"
)

// pingAgent answers Ping with resp and records the Authorization header
// of every call.
type pingAgent struct {
	agentpbconnect.UnimplementedAgentHandler
	mu    sync.Mutex
	resp  *agentpb.PingResponse
	auths []string
}

func (p *pingAgent) Ping(ctx context.Context, req *connect.Request[agentpb.PingRequest]) (*connect.Response[agentpb.PingResponse], error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.auths = append(p.auths, req.Header().Get("Authorization"))
	return connect.NewResponse(p.resp), nil
}

const testAgentToken = "0123456789abcdef0123456789abcdef0123456789abcdef"

// TestSingleHostAuthorizes checks that the agent token goes with every
// Connect call as Authorization and with every proxied request in the
// agent's own header, leaving the tenant's Authorization header alone.
func TestSingleHostAuthorizes(t *testing.T) {
	pa := &pingAgent{resp: &agentpb.PingResponse{Cpus: 4, MemoryTotalBytes: 8 << 30}}
	var proxied http.Header
	mux := http.NewServeMux()
	mux.Handle(agentpbconnect.NewAgentHandler(pa))
	mux.HandleFunc("/proxy/", func(w http.ResponseWriter, r *http.Request) { proxied = r.Header.Clone() })
	ts := httptest.NewServer(mux)
	defer ts.Close()

	hs := NewSingleHost(HostConfig{ID: "h1", URL: ts.URL, Token: testAgentToken})
	h, err := hs.Pick(context.Background(), nestbox.CreateCapsuleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pa.auths) != 1 || pa.auths[0] != "Bearer "+testAgentToken {
		t.Errorf("Connect calls' Authorization: %q, want the agent token", pa.auths)
	}
	req, _ := http.NewRequest("GET", h.ProxyURL+"/proxy/abc/49983/health", nil)
	req.Header.Set("Authorization", "Basic dXNlcjo=")
	resp, err := (&http.Client{Transport: h.Transport(http.DefaultTransport)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := proxied.Get(agentProxyAuthHeader); got != "Bearer "+testAgentToken {
		t.Errorf("proxied request's %s: %q, want the agent token", agentProxyAuthHeader, got)
	}
	if got := proxied.Get("Authorization"); got != "Basic dXNlcjo=" {
		t.Errorf("proxied request's own Authorization: %q, want it kept", got)
	}
}

// TestSingleHostTLS checks an https agent: the host set verifies it with
// the configured CA on Connect calls and on the callers' own transports
// (envd, port proxy), and a host set without the CA cannot reach it.
func TestSingleHostTLS(t *testing.T) {
	pa := &pingAgent{resp: &agentpb.PingResponse{Cpus: 4, MemoryTotalBytes: 8 << 30}}
	var proxied http.Header
	mux := http.NewServeMux()
	mux.Handle(agentpbconnect.NewAgentHandler(pa))
	mux.HandleFunc("/proxy/", func(w http.ResponseWriter, r *http.Request) { proxied = r.Header.Clone() })
	ts := httptest.NewTLSServer(mux)
	defer ts.Close()
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())

	hs := NewSingleHost(HostConfig{ID: "h1", URL: ts.URL, Token: testAgentToken, TLS: &tls.Config{RootCAs: pool}})
	h, err := hs.Pick(context.Background(), nestbox.CreateCapsuleRequest{})
	if err != nil {
		t.Fatalf("Pick of an https agent: %v", err)
	}
	base := &http.Transport{}
	for range 2 { // the clone of a caller's transport is made once
		resp, err := (&http.Client{Transport: h.Transport(base)}).Get(h.ProxyURL + "/proxy/abc/49983/health")
		if err != nil {
			t.Fatalf("proxied request over TLS: %v", err)
		}
		resp.Body.Close()
	}
	// One clone for the Connect client's transport, one for the caller's.
	if len(hs.transports) != 2 {
		t.Errorf("%d TLS clones of two transports, want 2", len(hs.transports))
	}
	if got := proxied.Get(agentProxyAuthHeader); got != "Bearer "+testAgentToken {
		t.Errorf("proxied request's %s over TLS: %q", agentProxyAuthHeader, got)
	}
	untrusting := NewSingleHost(HostConfig{ID: "h1", URL: ts.URL, Token: testAgentToken})
	if _, err := untrusting.Pick(context.Background(), nestbox.CreateCapsuleRequest{}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Pick of an https agent without its CA: %v, want unavailable", err)
	}
}

// TestSingleHostPickRefusesFullHost checks Pick against the host's
// capacity, and that a burst of picks costs one Ping.
func TestSingleHostPickRefusesFullHost(t *testing.T) {
	roomy := &agentpb.PingResponse{Cpus: 2, MemoryTotalBytes: 8 << 30, MemoryAvailableBytes: 6 << 30, MemoryReservedBytes: 1 << 30,
		MemoryCommitLimitBytes: 7 << 30, MemoryAllocatedBytes: 6 << 30,
		DiskTotalBytes: 100 << 30, DiskAvailableBytes: 50 << 30, DiskReservedBytes: 5 << 30, Sandboxes: 3, MaxSandboxes: 10}
	for _, tc := range []struct {
		name string
		edit func(*agentpb.PingResponse)
		req  nestbox.CreateCapsuleRequest
		want error
	}{
		{"room", nil, nestbox.CreateCapsuleRequest{VCPUs: 2, MemoryMB: 1024}, nil},
		{"memory limits full", nil, nestbox.CreateCapsuleRequest{MemoryMB: 1025}, errdefs.ErrExhausted},
		{"memory short now", func(p *agentpb.PingResponse) { p.MemoryAvailableBytes = 1<<30 - 1 }, nestbox.CreateCapsuleRequest{MemoryMB: 64}, errdefs.ErrExhausted},
		{"more vcpus than cores", nil, nestbox.CreateCapsuleRequest{VCPUs: 3}, errdefs.ErrInvalid},
		{"disk below reserve", func(p *agentpb.PingResponse) { p.DiskAvailableBytes = 4 << 30 }, nestbox.CreateCapsuleRequest{}, errdefs.ErrExhausted},
		{"sandbox maximum", func(p *agentpb.PingResponse) { p.Sandboxes = 10 }, nestbox.CreateCapsuleRequest{}, errdefs.ErrExhausted},
	} {
		resp := roomy
		if tc.edit != nil {
			resp = proto.Clone(roomy).(*agentpb.PingResponse)
			tc.edit(resp)
		}
		pa := &pingAgent{resp: resp}
		mux := http.NewServeMux()
		mux.Handle(agentpbconnect.NewAgentHandler(pa))
		ts := httptest.NewServer(mux)
		hs := NewSingleHost(HostConfig{ID: "h1", URL: ts.URL, Token: testAgentToken})
		now := time.Now()
		hs.now = func() time.Time { return now } // a stopped clock: the cache never expires
		for range 3 {
			_, err := hs.Pick(context.Background(), tc.req)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("%s: Pick: %v, want %v", tc.name, err, tc.want)
			}
		}
		if len(pa.auths) != 1 {
			t.Errorf("%s: %d Pings for 3 picks within the cache's second, want 1", tc.name, len(pa.auths))
		}
		now = now.Add(pingTTL)
		hs.Pick(context.Background(), tc.req)
		if len(pa.auths) != 2 {
			t.Errorf("%s: %d Pings after the cache expired, want 2", tc.name, len(pa.auths))
		}
		ts.Close()
	}

	// A host that does not answer is unavailable.
	hs := NewSingleHost(HostConfig{ID: "h1", URL: "http://127.0.0.1:1", Token: testAgentToken})
	if _, err := hs.Pick(context.Background(), nestbox.CreateCapsuleRequest{}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Pick of a host that does not answer: %v, want unavailable", err)
	}
}
