package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Dial retries of the proxy while a freshly opened port comes up: attempt n
// waits n*dialBackoff after a refused connection.
const (
	dialAttempts = 5
	dialBackoff  = 100 * time.Millisecond
)

// sandboxProxy forwards HTTP to the ports of one sandbox. It has its own
// transport (HTTP/1.1, a keep-alive pool per port), separate from every
// other sandbox and from the agent's own envd client, so heavy proxied
// traffic cannot starve anything else. Reverse proxies are cached per port
// and dropped, with their idle connections, when the sandbox goes.
type sandboxProxy struct {
	a         *Agent
	sb        *sandbox
	transport *http.Transport

	// mu guards byPort and closed.
	mu     sync.Mutex
	byPort map[int]*httputil.ReverseProxy
	closed bool
}

func newSandboxProxy(a *Agent, sb *sandbox) *sandboxProxy {
	p := &sandboxProxy{a: a, sb: sb, byPort: map[int]*httputil.ReverseProxy{}}
	p.transport = &http.Transport{
		DialContext:           p.dial,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Pass bodies through as they are; the client negotiates encoding.
		DisableCompression: true,
		// HTTP/1.1 only: no head-of-line blocking between unrelated
		// streams of one connection.
		Protocols: http1Only(),
	}
	return p
}

// dial connects to the sandbox, retrying with linear backoff while the
// port refuses connections (a server that is still starting). It refuses
// to dial once the sandbox is gone: its address may belong to a new
// sandbox already.
func (p *sandboxProxy) dial(ctx context.Context, netw, addr string) (net.Conn, error) {
	// Marked: the host's rules let only the agent's sockets reach a sandbox.
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: p.a.net.DialControl}
	for attempt := 1; ; attempt++ {
		if p.isClosed() {
			return nil, errSandboxGone
		}
		c, err := d.DialContext(ctx, netw, addr)
		if err == nil {
			return c, nil
		}
		if attempt == dialAttempts || !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt) * dialBackoff):
		}
	}
}

var errSandboxGone = errors.New("sandbox is gone")

// http1Only is the protocol set of the agent's server and proxy transport.
func http1Only() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	return &p
}

func (p *sandboxProxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// close drops the cached proxies and idle connections; later dials fail.
func (p *sandboxProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.byPort = map[int]*httputil.ReverseProxy{}
	p.mu.Unlock()
	p.transport.CloseIdleConnections()
}

// forPort returns the cached reverse proxy for port.
func (p *sandboxProxy) forPort(port int) *httputil.ReverseProxy {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rp, ok := p.byPort[port]; ok {
		return rp
	}
	target := net.JoinHostPort(p.a.dialAddr(p.sb).String(), strconv.Itoa(port))
	prefix := "/proxy/" + p.sb.id + "/" + strconv.Itoa(port)
	rp := &httputil.ReverseProxy{
		Transport: p.transport,
		// Stream: exec output, file downloads and server-sent events go
		// out as they arrive.
		FlushInterval: -1,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: target})
			pr.SetXForwarded()
		},
		ModifyResponse: func(resp *http.Response) error {
			if loc := resp.Header.Get("Location"); loc != "" {
				resp.Header.Set("Location", rewriteLocation(loc, prefix, target, port))
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return // the client went away
			}
			msg := "The sandbox is running but port is not open"
			if errors.Is(err, errSandboxGone) {
				msg = "The sandbox was not found"
			}
			p.a.log.Debug("proxy error", "sandbox", p.sb.id, "port", port, "err", err)
			// The request's body may be unread: with full duplex on, the
			// server would read the connection's next request while the
			// body's read is pending (net/http panics "invalid concurrent
			// Body.Read call"). The client opens a new connection.
			w.Header().Set("Connection", "close")
			writeJSONError(w, http.StatusBadGateway, msg, map[string]any{"sandboxId": p.sb.id, "port": port})
		},
	}
	p.byPort[port] = rp
	return rp
}

// rewriteLocation makes a redirect from the sandbox point back through the
// proxy: root-relative paths and absolute URLs to the sandbox's own address
// get the /proxy/{id}/{port} prefix; anything else is left alone.
func rewriteLocation(loc, prefix, target string, port int) string {
	u, err := url.Parse(loc)
	if err != nil {
		return loc
	}
	switch {
	case u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/"):
	case (u.Scheme == "http" || u.Scheme == "https") && isSandboxHost(u.Host, target, port):
		u.Scheme, u.Host = "", ""
		if u.Path == "" {
			u.Path = "/"
		}
	default:
		return loc
	}
	u.Path = prefix + u.Path
	if u.RawPath != "" {
		u.RawPath = prefix + u.RawPath
	}
	return u.String()
}

func isSandboxHost(host, target string, port int) bool {
	p := strconv.Itoa(port)
	return host == target || host == "localhost:"+p || host == "127.0.0.1:"+p || host == "0.0.0.0:"+p
}

// serveProxy serves /proxy/{id}/{port}/{path...}: the request goes to
// {path...} on the sandbox's port, with the prefix stripped and trailing
// slashes kept.
func (a *Agent) serveProxy(w http.ResponseWriter, r *http.Request) {
	id, port, rest, ok := parseProxyPath(r.URL.EscapedPath())
	if !ok {
		writeJSONError(w, http.StatusBadRequest, "proxy path must be /proxy/{sandboxID}/{port}/...", nil)
		return
	}
	sb, err := a.running(id)
	if err != nil {
		writeJSONError(w, http.StatusBadGateway, "The sandbox was not found", map[string]any{"sandboxId": id})
		return
	}
	path, err := url.PathUnescape(rest)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "invalid path escape", nil)
		return
	}
	// By default Go's HTTP/1 server consumes and closes the request body
	// when the response starts. The sandbox may answer as soon as it has
	// the body's declared length, while the proxy's transport still makes
	// its last read of the body (to check for EOF); that read then fails
	// and the transport cuts the answer mid-stream (golang.org/issue/40747).
	if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
		a.log.Debug("proxy without full duplex", "err", err) // plain requests still work
	}
	out := r.WithContext(r.Context()) // a shallow copy
	u := *r.URL
	u.Path, u.RawPath = path, ""
	if rest != u.EscapedPath() {
		u.RawPath = rest
	}
	out.URL = &u
	sb.proxy.forPort(port).ServeHTTP(w, out)
}

// parseProxyPath splits an escaped /proxy/{id}/{port}{rest} path. rest is
// "/" when the path ends after the port.
func parseProxyPath(p string) (id string, port int, rest string, ok bool) {
	s, found := strings.CutPrefix(p, "/proxy/")
	if !found {
		return "", 0, "", false
	}
	id, s, found = strings.Cut(s, "/")
	if !found || id == "" {
		return "", 0, "", false
	}
	portStr, tail, hasTail := strings.Cut(s, "/")
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 || portStr[0] == '+' {
		return "", 0, "", false
	}
	rest = "/"
	if hasTail {
		rest = "/" + tail
	}
	return id, port, rest, true
}
