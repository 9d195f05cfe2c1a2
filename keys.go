package nestbox

import (
	"context"
	"net/http"
	"strings"
)

// CreateKey creates an API key for the caller's team. The answer is the
// only time the secret (APIKeyCreated.Key) is shown.
func (c *Client) CreateKey(ctx context.Context, name string) (APIKeyCreated, error) {
	var k APIKeyCreated
	err := c.do(ctx, http.MethodPost, "/v1/keys", nil, CreateAPIKeyRequest{Name: name}, &k)
	return k, err
}

// Keys lists the team's API keys, without their secrets.
func (c *Client) Keys(ctx context.Context) ([]APIKey, error) {
	var l APIKeyList
	err := c.do(ctx, http.MethodGet, "/v1/keys", nil, nil, &l)
	return l.Keys, err
}

// DeleteKey revokes the API key with this ID.
func (c *Client) DeleteKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, pathf("/v1/keys/%s", id), nil, nil, nil)
}

// E2BKey returns the secret in the form E2B's SDKs expect: the same hex
// digits behind "e2b_" instead of "nbx_". It is empty when Key has not the
// "nbx_" form.
func (k APIKeyCreated) E2BKey() string {
	hex, ok := strings.CutPrefix(k.Key, "nbx_")
	if !ok || hex == "" {
		return ""
	}
	return "e2b_" + hex
}
