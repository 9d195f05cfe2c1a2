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

// portProxy forwards HTTP to the ports of capsules, through the host agent
// that runs each (the agent's /proxy/{id}/{port}/ forwards to the port and
// rewrites redirects to keep that prefix). It has its own transport, apart
// from the envd client's, so heavy proxied traffic cannot starve exec and
// terminal streams.
//
// Requests reach it in two shapes: by path (/proxy/{id}/{port}/..., which
// the agent's prefix matches as it is) and routed (E2B's headers, a
// {port}-{id}.{domain} host name, a signed /files URL: the path is the
// capsule's own, so the prefix is added on the way in and stripped from
// redirects on the way out). Reverse proxies are cached per capsule, port
// and shape. When a capsule is gone, evict drops them and cuts every
// request still streaming to it.
type portProxy struct {
	s         *Server
	transport *http.Transport

	// mu guards cache and live.
	mu    sync.Mutex
	cache map[proxyKey]*httputil.ReverseProxy
	// live holds, per capsule, a context that every proxied request to it
	// runs under; cancelled by evict.
	live map[string]liveCapsule
}

type proxyKey struct {
	capsule string
	port    int
	routed  bool
}

type liveCapsule struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newPortProxy(s *Server) *portProxy {
	return &portProxy{s: s, transport: newTransport(), cache: map[proxyKey]*httputil.ReverseProxy{}, live: map[string]liveCapsule{}}
}

// evict drops the cached proxies of a capsule and ends its requests.
func (p *portProxy) evict(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.cache {
		if k.capsule == id {
			delete(p.cache, k)
		}
	}
	if l, ok := p.live[id]; ok {
		l.cancel()
		delete(p.live, id)
	}
}

// get returns the reverse proxy for a capsule's port and the context the
// request must run under.
func (p *portProxy) get(id string, port int, routed bool, h lifecycle.Host) (*httputil.ReverseProxy, context.Context, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.live[id]
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		l = liveCapsule{ctx, cancel}
		p.live[id] = l
	}
	k := proxyKey{id, port, routed}
	if rp, ok := p.cache[k]; ok {
		return rp, l.ctx, nil
	}
	target, err := url.Parse(h.ProxyURL)
	if err != nil {
		return nil, nil, errdefs.Unavailable("host %s has a bad address: %v", h.ID, err)
	}
	prefix := "/proxy/" + id + "/" + strconv.Itoa(port)
	rp := &httputil.ReverseProxy{
		Transport:     h.Transport(p.transport),
		FlushInterval: -1, // stream every write: Connect streams, server-sent events
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = target.Scheme, target.Host
			if routed {
				pr.Out.URL.Path = prefix + pr.In.URL.Path
				pr.Out.URL.RawPath = ""
				if raw := pr.In.URL.RawPath; raw != "" {
					pr.Out.URL.RawPath = prefix + raw
				}
			}
			pr.Out.Host = pr.In.Host
			// Credentials of the platform stay with the platform.
			pr.Out.Header.Del("X-API-Key")
			pr.Out.Header.Del("E2b-Sandbox-Id")
			pr.Out.Header.Del("E2b-Sandbox-Port")
			pr.SetXForwarded()
		},
		ModifyResponse: func(resp *http.Response) error {
			if loc := resp.Header.Get("Location"); routed && strings.HasPrefix(loc, prefix+"/") {
				resp.Header.Set("Location", strings.TrimPrefix(loc, prefix))
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			err = errdefs.Unavailable("capsule %s port %d: %v", id, port, err)
			if routed {
				writeSandboxGone(w, id, err.Error())
				return
			}
			p.s.writeError(w, r, err)
		},
	}
	p.cache[k] = rp
	return rp, l.ctx, nil
}

// forward sends r to port of capsule id through the proxy.
func (p *portProxy) forward(w http.ResponseWriter, r *http.Request, id string, port int, routed bool, h lifecycle.Host) error {
	rp, capsuleCtx, err := p.get(id, port, routed, h)
	if err != nil {
		return err
	}
	// The request ends with the client or with the capsule.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(capsuleCtx, cancel)
	defer stop()
	if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
		p.s.log.Debug("proxy without full duplex", "err", err)
	}
	rp.ServeHTTP(w, r.WithContext(ctx))
	return nil
}

// serveProxy serves /proxy/{id}/{port}/{path...} for the request's team.
func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request) {
	id, port, ok := parseProxyPath(r.URL.EscapedPath())
	if !ok {
		s.writeError(w, r, errdefs.Invalid("proxy path must be /proxy/{capsuleID}/{port}/..."))
		return
	}
	_, h, err := s.life.Running(r.Context(), team(r), id)
	if err == nil {
		err = s.proxy.forward(w, r, id, port, false, h)
	}
	if err != nil {
		s.writeError(w, r, err)
	}
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
	port, ok = parsePort(portStr)
	return id, port, ok
}

// parsePort reads a TCP port written plainly: no sign, no leading zero.
func parsePort(s string) (int, bool) {
	port, err := strconv.Atoi(s)
	if err != nil || port < 1 || port > 65535 || s[0] == '+' || s[0] == '0' {
		return 0, false
	}
	return port, true
}
