package nestbox

import (
	"net/http"
	"strconv"
)

// ProxyURL returns the base URL under which the control plane forwards
// HTTP to a port of the capsule, e.g. ".../proxy/<id>/8080/". Requests to
// it need the API key: send them with Client.HTTPClient.
func (h *Handle) ProxyURL(port int) string {
	return h.c.endpoint(pathf("/proxy/%s/%s/", h.id, strconv.Itoa(port)), nil)
}

// HTTPClient returns an *http.Client that adds the API key to the requests
// it sends to the control plane (such as those to ProxyURL) and to no
// other host, so that a redirect elsewhere does not leak the key.
func (c *Client) HTTPClient() *http.Client {
	hc := *c.hc
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = &keyTransport{base: base, c: c}
	return &hc
}

// keyTransport adds the client's headers to requests for its host.
type keyTransport struct {
	base http.RoundTripper
	c    *Client
}

func (t *keyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != t.c.base.Scheme || req.URL.Host != t.c.base.Host {
		return t.base.RoundTrip(req)
	}
	req = req.Clone(req.Context()) // a RoundTripper must not change its request
	req.Header.Set("X-API-Key", t.c.key)
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", t.c.userAgent)
	}
	return t.base.RoundTrip(req)
}
