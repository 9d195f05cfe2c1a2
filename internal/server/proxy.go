package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/lifecycle"
)

// portProxy forwards /proxy/{id}/{port}/... to the host agent that runs
// capsule {id}, which forwards it to the port (rewriting redirects to keep
// the /proxy/{id}/{port} prefix, which is the same here). It has its own
// transport, apart from the envd client's. Reverse proxies are cached per
// capsule and port and evicted when the capsule is destroyed.
type portProxy struct {
	s         *Server
	transport *http.Transport

	// mu guards cache.
	mu    sync.Mutex
	cache map[proxyKey]*httputil.ReverseProxy
}

type proxyKey struct {
	capsule string
	port    int
}

func newPortProxy(s *Server) *portProxy {
	return &portProxy{s: s, transport: newTransport(), cache: map[proxyKey]*httputil.ReverseProxy{}}
}

// evict drops the cached proxies of a capsule.
func (p *portProxy) evict(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.cache {
		if k.capsule == id {
			delete(p.cache, k)
		}
	}
}

func (p *portProxy) get(id string, port int, h lifecycle.Host) (*httputil.ReverseProxy, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := proxyKey{id, port}
	if rp, ok := p.cache[k]; ok {
		return rp, nil
	}
	target, err := url.Parse(h.ProxyURL)
	if err != nil {
		return nil, errdefs.Unavailable("host %s has a bad address: %v", h.ID, err)
	}
	rp := &httputil.ReverseProxy{
		Transport:     p.transport,
		FlushInterval: -1, // stream: server-sent events, long downloads
		Rewrite: func(pr *httputil.ProxyRequest) {
			// The path stays as it is: the agent serves the same
			// /proxy/{id}/{port}/ prefix.
			pr.Out.URL.Scheme, pr.Out.URL.Host = target.Scheme, target.Host
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del("X-API-Key") // the sandbox must not see the caller's key
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			p.s.writeError(w, r, errdefs.Unavailable("capsule %s port %d: %v", id, port, err))
		},
	}
	p.cache[k] = rp
	return rp, nil
}

// serveProxy serves /proxy/{id}/{port}/{path...} for the request's team.
func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request) {
	id, port, ok := parseProxyPath(r.URL.EscapedPath())
	if !ok {
		s.writeError(w, r, errdefs.Invalid("proxy path must be /proxy/{capsuleID}/{port}/..."))
		return
	}
	_, h, err := s.life.Running(r.Context(), team(r), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rp, err := s.proxy.get(id, port, h)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
		s.log.Debug("proxy without full duplex", "err", err)
	}
	rp.ServeHTTP(w, r)
}

// parseProxyPath reads the capsule and port of /proxy/{id}/{port}[/...].
func parseProxyPath(p string) (id string, port int, ok bool) {
	rest, found := strings.CutPrefix(p, "/proxy/")
	if !found {
		return "", 0, false
	}
	id, rest, found = strings.Cut(rest, "/")
	if !found || id == "" {
		return "", 0, false
	}
	portStr, _, _ := strings.Cut(rest, "/")
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 || portStr[0] == '+' || portStr[0] == '0' {
		return "", 0, false
	}
	return id, port, true
}
