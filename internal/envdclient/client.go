// Package envdclient is the control plane's client for the envd of one
// capsule: it runs commands (one-shot, streamed, background, on a PTY),
// moves files in and out, and inspects the capsule's filesystem. envd is
// reached through the host agent's reverse proxy, so a Client is given the
// proxy URL of the capsule's envd port and the capsule's access token.
//
// Every error carries an internal/errdefs kind (ErrNotFound,
// ErrUnavailable, ...) and envd's own message, prefixed with the operation.
// Only the control plane imports this package.
package envdclient

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/filesystempb/filesystempbconnect"
	"nestbox.dev/internal/proto/processpb/processpbconnect"
)

// DefaultMaxOutputBytes is how much of each output stream Run keeps when
// Config.MaxOutputBytes is zero.
const DefaultMaxOutputBytes = 32 << 20

// Config configures a Client. Zero values mean the documented defaults.
type Config struct {
	// BaseURL is envd's root, without a trailing slash; it may have a path,
	// e.g. "http://127.0.0.1:5007/proxy/<capsuleID>/49983". Required.
	BaseURL string
	// AccessToken is sent as X-Access-Token on every request; "" sends
	// none (envd before /init, or in dev mode).
	AccessToken string
	// HTTPClient carries every request; nil means a client of its own with
	// a dial and a response-header timeout and no overall timeout (streams
	// and downloads last as long as they need). A given client's Timeout,
	// if set, cuts streams and downloads too.
	HTTPClient *http.Client
	// MaxOutputBytes caps what Run keeps of stdout and of stderr each;
	// zero means DefaultMaxOutputBytes.
	MaxOutputBytes int
}

// Client talks to one envd. It is safe for concurrent use.
type Client struct {
	base      string
	http      *http.Client
	proc      processpbconnect.ProcessClient
	fs        filesystempbconnect.FilesystemClient
	maxOutput int
}

// New returns a Client for the envd at cfg.BaseURL. It does not connect.
func New(cfg Config) *Client {
	hc := cfg.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient()
	}
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	// A copy, so that the caller's client stays as it was.
	wrapped := *hc
	wrapped.Transport = &transport{base: rt, token: cfg.AccessToken}
	base := strings.TrimRight(cfg.BaseURL, "/")
	c := &Client{
		base:      base,
		http:      &wrapped,
		maxOutput: cfg.MaxOutputBytes,
	}
	if c.maxOutput <= 0 {
		c.maxOutput = DefaultMaxOutputBytes
	}
	// The Connect protocol with the binary protobuf codec: the generated
	// clients' default, and what E2B's envd serves too.
	c.proc = processpbconnect.NewProcessClient(c.http, base)
	c.fs = filesystempbconnect.NewFilesystemClient(c.http, base)
	return c
}

// defaultHTTPClient bounds how long envd may take to answer, but not how
// long an answer may stream.
func defaultHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   16,
	}}
}

// Health checks that envd answers GET /health.
func (c *Client) Health(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/health", nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return transportError("health", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return statusError("health", resp)
	}
	return nil
}

// asUser sets the header by which envd picks the Unix user of an RPC, as
// E2B's SDK does; "" leaves envd's default user.
func asUser(h http.Header, user string) {
	if user != "" {
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":")))
	}
}

// request wraps msg for a unary RPC as user.
func request[T any](msg *T, user string) *connect.Request[T] {
	r := connect.NewRequest(msg)
	asUser(r.Header(), user)
	return r
}
