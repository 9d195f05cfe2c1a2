package nestbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// The environment variables that a zero Config reads.
const (
	EnvURL    = "NESTBOX_URL"
	EnvAPIKey = "NESTBOX_API_KEY"
)

// DefaultUserAgent is sent when Config.UserAgent is empty.
const DefaultUserAgent = "nestbox-go"

// Config configures a Client. The zero Config is ready to use when the
// environment names a control plane.
type Config struct {
	// URL is the control plane's base URL, e.g. "http://127.0.0.1:8080"; a
	// path prefix is kept. Empty means $NESTBOX_URL, then the URL in the
	// credentials file of `nestbox up` ($NESTBOX_DATA_DIR/credentials.json).
	URL string
	// APIKey is sent as X-API-Key on every request. Empty means
	// $NESTBOX_API_KEY, then the credentials file's key when the URL is the
	// file's URL.
	APIKey string
	// HTTPClient sends the requests and opens the WebSockets; nil means
	// http.DefaultClient. Its Timeout, if any, bounds every request,
	// including the long ones (waits of up to a minute, one-shot exec, file
	// transfers): prefer contexts.
	HTTPClient *http.Client
	// UserAgent is sent with every request; empty means DefaultUserAgent.
	UserAgent string
}

// Client calls one Nestbox control plane. It is safe for concurrent use.
type Client struct {
	base      *url.URL // scheme, host and path prefix without trailing slash
	key       string
	hc        *http.Client
	userAgent string
}

// New returns a client for cfg. Empty URL and APIKey are looked up as the
// CLI does (see resolveConnection): the environment, then the credentials
// file of `nestbox up` on this machine. It fails when none gives both.
func New(cfg Config) (*Client, error) {
	raw, key, err := resolveConnection(cfg.URL, cfg.APIKey, os.Getenv)
	if err != nil {
		return nil, err
	}
	return newClient(raw, key, cfg)
}

// newClient checks the URL raw and returns a client of it that sends key
// ("" sends none).
func newClient(raw, key string, cfg Config) (*Client, error) {
	base, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: URL %q: %v", ErrInvalid, raw, err)
	}
	if (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("%w: URL %q: want http://host[:port] or https://host[:port]", ErrInvalid, raw)
	}
	if base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("%w: URL %q: no query or fragment allowed", ErrInvalid, raw)
	}
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawPath = ""
	hc := cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	return &Client{base: base, key: key, hc: hc, userAgent: ua}, nil
}

// URL returns the control plane's base URL.
func (c *Client) URL() string { return c.base.String() }

// Health checks that the control plane answers GET /health.
func (c *Client) Health(ctx context.Context) error {
	var body struct {
		Status string `json:"status"`
	}
	if err := c.do(ctx, http.MethodGet, "/health", nil, nil, &body); err != nil {
		return err
	}
	if body.Status != "ok" {
		return fmt.Errorf("health: status %q", body.Status)
	}
	return nil
}

// endpoint returns the absolute URL of an API path. path must already be
// escaped (see pathf).
func (c *Client) endpoint(path string, q url.Values) string {
	u := c.base.String() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// pathf formats an API path, escaping every argument as one path segment.
func pathf(format string, segments ...any) string {
	esc := make([]any, len(segments))
	for i, s := range segments {
		esc[i] = url.PathEscape(fmt.Sprint(s))
	}
	return fmt.Sprintf(format, esc...)
}

// header sets what every request to the control plane carries.
func (c *Client) header(h http.Header) {
	if c.key != "" {
		h.Set("X-API-Key", c.key)
	}
	h.Set("User-Agent", c.userAgent)
}

// newRequest builds a request; body is sent as it is (streamed).
func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(path, q), body)
	if err != nil {
		return nil, err
	}
	c.header(req.Header)
	return req, nil
}

// send sends req and turns a non-2xx answer into an *APIError. On success
// the caller owns the response body.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

// do sends a JSON request (in may be nil) and decodes a JSON answer into
// out (which may be nil).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if out != nil {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("decode %s %s: empty answer", method, path)
		}
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}
