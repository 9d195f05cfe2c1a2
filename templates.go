package nestbox

import (
	"context"
	"net/http"
)

// Templates lists the root filesystems that capsules can start from
// (CreateCapsuleRequest.Template).
func (c *Client) Templates(ctx context.Context) ([]Template, error) {
	var l TemplateList
	err := c.do(ctx, http.MethodGet, "/v1/templates", nil, nil, &l)
	return l.Templates, err
}
