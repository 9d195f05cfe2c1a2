package controlplane

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/agentpb/agentpbconnect"
)

// agentProxyAuthHeader is where the agent expects its token on /proxy/
// requests (agent.ProxyAuthHeader): their Authorization header belongs to
// whatever serves the capsule's port.
const agentProxyAuthHeader = "Nestbox-Agent-Authorization"

// pingTTL is how long a host's Ping answer is trusted by Pick.
const pingTTL = time.Second

// SingleHost is the host set of a one-machine platform: one agent at a
// known address. (Fleets register hosts in the store instead.)
type SingleHost struct {
	host lifecycle.Host
	now  func() time.Time
	tls  *tls.Config

	// tmu guards transports: the callers' transports and their clones
	// that verify the agent with tls.
	tmu        sync.Mutex
	transports map[*http.Transport]*http.Transport

	// mu guards the cached Ping answer.
	mu       sync.Mutex
	ping     *agentpb.PingResponse
	pingedAt time.Time
}

// HostConfig describes the agent of a host.
type HostConfig struct {
	// ID names the host; URL is its agent's base URL, e.g.
	// http://127.0.0.1:5007 or https://10.0.0.5:5007. Required.
	ID, URL string
	// Token is what the agent requires on every request (see
	// agent.Config.Token). Required.
	Token string
	// TLS verifies an https agent, e.g. with its CA as RootCAs; nil means
	// the system's roots.
	TLS *tls.Config
}

// NewSingleHost returns the host set of the one agent cfg describes.
func NewSingleHost(cfg HostConfig) *SingleHost {
	url := strings.TrimRight(cfg.URL, "/")
	s := &SingleHost{now: time.Now, tls: cfg.TLS, transports: map[*http.Transport]*http.Transport{}}
	var p http.Protocols
	p.SetHTTP1(true) // no head-of-line blocking between unrelated calls
	authorize := func(rt http.RoundTripper) http.RoundTripper {
		return agentAuth{token: cfg.Token, next: s.withTLS(rt)}
	}
	hc := &http.Client{Transport: authorize(&http.Transport{
		Protocols:             &p,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 10 * time.Minute, // a create may build a template
	})}
	s.host = lifecycle.Host{
		ID:        cfg.ID,
		Agent:     agentpbconnect.NewAgentClient(hc, url, connect.WithProtoJSON()),
		ProxyURL:  url,
		Authorize: authorize,
	}
	return s
}

// withTLS returns rt set up to verify the agent with s.tls: for each of
// the callers' transports (they keep separate pools on purpose) one clone
// with the TLS config, made once.
func (s *SingleHost) withTLS(rt http.RoundTripper) http.RoundTripper {
	t, ok := rt.(*http.Transport)
	if s.tls == nil || !ok {
		return rt
	}
	s.tmu.Lock()
	defer s.tmu.Unlock()
	c, ok := s.transports[t]
	if !ok {
		c = t.Clone()
		c.TLSClientConfig = s.tls.Clone()
		s.transports[t] = c
	}
	return c
}

// agentAuth adds the agent token to every request: as Authorization on the
// agent's API, as agentProxyAuthHeader on /proxy/ (the agent removes it
// before the request reaches the capsule).
type agentAuth struct {
	token string
	next  http.RoundTripper
}

func (a agentAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if strings.HasPrefix(r.URL.Path, "/proxy/") {
		r.Header.Set(agentProxyAuthHeader, "Bearer "+a.token)
	} else {
		r.Header.Set("Authorization", "Bearer "+a.token)
	}
	return a.next.RoundTrip(r)
}

// Pick returns the one host if it has room for req: memory available above
// its reserve and left within what it commits to sandboxes, free disk above its reserve, fewer
// sandboxes than its maximum, and at least as many cores as req's vCPUs.
// A full host is errdefs.ErrExhausted (429); one that does not answer,
// errdefs.Unavailable. The host's Ping is cached for a second, so a burst
// of creates costs one Ping (the agent's own admission check is exact).
func (s *SingleHost) Pick(ctx context.Context, req nestbox.CreateCapsuleRequest) (lifecycle.Host, error) {
	p, err := s.capacity(ctx)
	if err != nil {
		return lifecycle.Host{}, err
	}
	if req.VCPUs > 0 && p.Cpus > 0 && uint32(req.VCPUs) > p.Cpus {
		return lifecycle.Host{}, errdefs.Invalid("%d vCPUs is more than the host's %d cores", req.VCPUs, p.Cpus)
	}
	if p.MaxSandboxes > 0 && p.Sandboxes >= p.MaxSandboxes {
		return lifecycle.Host{}, fmt.Errorf("host %s runs its maximum of %d capsules: %w", s.host.ID, p.MaxSandboxes, errdefs.ErrExhausted)
	}
	if p.MemoryTotalBytes > 0 && p.MemoryAvailableBytes < p.MemoryReservedBytes {
		return lifecycle.Host{}, fmt.Errorf("host %s is short of memory (%d MiB available, %d MiB kept for the host): %w",
			s.host.ID, p.MemoryAvailableBytes>>20, p.MemoryReservedBytes>>20, errdefs.ErrExhausted)
	}
	mem := uint64(max(req.MemoryMB, 0)) << 20
	if limit := p.MemoryCommitLimitBytes; limit > 0 && p.MemoryAllocatedBytes+mem > limit {
		return lifecycle.Host{}, fmt.Errorf("host %s has no memory left for %d MiB more (the capsules' limits add up to %d of the %d MiB it commits): %w",
			s.host.ID, mem>>20, p.MemoryAllocatedBytes>>20, limit>>20, errdefs.ErrExhausted)
	}
	if p.DiskTotalBytes > 0 && p.DiskAvailableBytes < p.DiskReservedBytes {
		return lifecycle.Host{}, fmt.Errorf("host %s is low on disk (%d MiB free, %d MiB kept in reserve): %w",
			s.host.ID, p.DiskAvailableBytes>>20, p.DiskReservedBytes>>20, errdefs.ErrExhausted)
	}
	return s.host, nil
}

// capacity returns the host's Ping answer, at most pingTTL old. Its
// deadline is ctx's: lifecycle bounds Pick as an agent query (calls.go).
func (s *SingleHost) capacity(ctx context.Context) (*agentpb.PingResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ping != nil && s.now().Sub(s.pingedAt) < pingTTL {
		return s.ping, nil
	}
	resp, err := s.host.Agent.Ping(ctx, connect.NewRequest(&agentpb.PingRequest{}))
	if err != nil {
		return nil, errdefs.Unavailable("host %s does not answer: %v", s.host.ID, err)
	}
	s.ping, s.pingedAt = resp.Msg, s.now()
	return s.ping, nil
}

// Get returns the host if id is its ID.
func (s *SingleHost) Get(id string) (lifecycle.Host, error) {
	if id != s.host.ID {
		return lifecycle.Host{}, errdefs.NotFound("host %q not found", id)
	}
	return s.host, nil
}

// All returns the one host.
func (s *SingleHost) All() []lifecycle.Host { return []lifecycle.Host{s.host} }

// HostClient returns the lifecycle.Host through which a control plane
// drives the agent cfg describes: a fleet's registry makes one per host
// (fleet.Config.Connect).
func HostClient(cfg HostConfig) lifecycle.Host { return NewSingleHost(cfg).host }
