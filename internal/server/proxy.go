package server

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"nestbox.dev/internal/apikey"
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

// capsules returns the IDs of the capsules that have cached proxies or
// requests in flight (an entry in live, which get makes before any proxy).
func (p *portProxy) capsules() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, len(p.live))
	for id := range p.live {
		ids = append(ids, id)
	}
	return ids
}

// alive returns the context that ends when capsule id is evicted: exec
// and terminal streams follow it as proxied requests do.
func (p *portProxy) alive(id string) context.Context {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.liveLocked(id).ctx
}

// liveLocked returns capsule id's live entry, made if needed. The caller
// holds p.mu.
func (p *portProxy) liveLocked(id string) liveCapsule {
	l, ok := p.live[id]
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		l = liveCapsule{ctx, cancel}
		p.live[id] = l
	}
	return l
}

// get returns the reverse proxy for a capsule's port and the context the
// request must run under.
func (p *portProxy) get(id string, port int, routed bool, h lifecycle.Host) (*httputil.ReverseProxy, context.Context, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.liveLocked(id)
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
			stripCredentials(pr.Out.Header)
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
				writeSandboxError(w, http.StatusBadGateway, id, err.Error())
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

// cookiePrefix is the prefix of the names of cookies the control plane
// sets (none today; a dashboard session would use it): they are the
// platform's, not the capsule's.
const cookiePrefix = "nestbox_"

// stripCredentials removes from the headers of a request bound for a
// capsule every credential and routing header that is the control plane's:
// X-API-Key, any Authorization but envd's Basic user (re-encoded from the
// user name alone: a password, or an API key given as one, is dropped),
// Proxy-Authorization, the control plane's cookies, and E2B's routing and
// traffic-token headers. It is the one place that does so; every proxied
// request passes through it (the port proxy's Rewrite) before anything
// adds the control plane's own credentials towards the agent. envd's
// X-Access-Token stays: it is the capsule's, not the platform's.
func stripCredentials(h http.Header) {
	h.Del("X-API-Key")
	h.Del("Proxy-Authorization")
	h.Del("E2b-Sandbox-Id")
	h.Del("E2b-Sandbox-Port")
	h.Del(trafficTokenHeader)
	if user, ok := basicUser(h.Values("Authorization")); ok {
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":")))
	} else {
		h.Del("Authorization")
	}
	stripCookies(h)
}

// basicUser returns the user of a single "Authorization: Basic" value, as
// envd reads it to pick a process's user (E2B's SDKs send
// base64("user:")). A user name shaped like an API key is not one.
func basicUser(vals []string) (string, bool) {
	if len(vals) != 1 {
		return "", false
	}
	scheme, cred, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", false
	}
	user, _, _ := strings.Cut(string(b), ":")
	if user == "" || strings.ContainsAny(user, "\x00\r\n") {
		return "", false
	}
	if _, err := apikey.Parse(user); err == nil {
		return "", false
	}
	return user, true
}

// stripCookies drops the control plane's cookies from the Cookie headers,
// keeping the capsule's own.
func stripCookies(h http.Header) {
	vals := h.Values("Cookie")
	if len(vals) == 0 {
		return
	}
	var keep []string
	for _, v := range vals {
		for _, part := range strings.Split(v, ";") {
			part = strings.TrimSpace(part)
			name, _, _ := strings.Cut(part, "=")
			if part == "" || strings.HasPrefix(strings.ToLower(name), cookiePrefix) {
				continue
			}
			keep = append(keep, part)
		}
	}
	h.Del("Cookie")
	if len(keep) > 0 {
		h.Set("Cookie", strings.Join(keep, "; "))
	}
}
