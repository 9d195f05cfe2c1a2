package nestbox

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// SnapshotOptions are the settings of Handle.Snapshot.
type SnapshotOptions struct {
	// Name is "name" or "name:tag" (tag "default" when omitted), unique in
	// the team; empty makes an unnamed snapshot.
	Name string
	// Pause pauses the capsule once the snapshot is taken; by default it
	// runs on.
	Pause bool
}

// Snapshot takes a snapshot of the running capsule: its processes, memory
// and files, kept on its host (the capsule stops for the checkpoint and
// runs on, or is paused with opts.Pause). Unless NoWait is given, it
// waits until the snapshot is ready; a snapshot the host fails to take is
// removed and its error returned. Start capsules from it by naming its ID
// or name as CreateCapsuleRequest.Template. A capsule that is not running
// is ErrConflict; a name the team has, or the team's snapshot or disk
// limit, are errors of their own codes (already_exists,
// resource_exhausted).
func (h *Handle) Snapshot(ctx context.Context, opts SnapshotOptions, wait ...WaitOption) (Snapshot, error) {
	var sn Snapshot
	req := CreateSnapshotRequest{Name: opts.Name, Pause: opts.Pause}
	if err := h.c.do(ctx, http.MethodPost, pathf("/v1/capsules/%s/snapshots", h.id), nil, req, &sn); err != nil {
		return sn, err
	}
	if applyWait(wait).noWait || sn.Status != SnapshotCreating {
		return sn, nil
	}
	return h.c.waitSnapshot(ctx, sn.ID)
}

// waitSnapshot long-polls GET /v1/snapshots/{id}?wait=true until the
// snapshot is no longer being created or ctx ends.
func (c *Client) waitSnapshot(ctx context.Context, id string) (Snapshot, error) {
	for {
		timeout := waitCallTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = min(timeout, max(time.Until(dl), time.Second))
		}
		q := url.Values{"wait": {"true"}, "timeout": {strconv.Itoa(int(timeout.Round(time.Second)/time.Second)) + "s"}}
		var sn Snapshot
		if err := c.do(ctx, http.MethodGet, pathf("/v1/snapshots/%s", id), q, nil, &sn); err != nil {
			return sn, err
		}
		if sn.Status != SnapshotCreating {
			return sn, nil
		}
		if err := ctx.Err(); err != nil {
			return sn, err
		}
	}
}

// SnapshotListOptions select a page of Client.Snapshots. Zero fields
// select all.
type SnapshotListOptions struct {
	// CapsuleID keeps the snapshots taken of this capsule.
	CapsuleID string
	// Name is "name" or "name:tag".
	Name string
	// Limit is the page size, 1 to 100; zero means 100.
	Limit int
	// Cursor is SnapshotList.NextCursor of the previous page.
	Cursor string
}

// Snapshots returns a page of the team's snapshots, newest first.
func (c *Client) Snapshots(ctx context.Context, opts SnapshotListOptions) (SnapshotList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"capsule_id": opts.CapsuleID, "name": opts.Name, "cursor": opts.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if opts.Limit != 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	var l SnapshotList
	err := c.do(ctx, http.MethodGet, "/v1/snapshots", q, nil, &l)
	return l, err
}

// GetSnapshot returns one of the team's snapshots by ID or name.
func (c *Client) GetSnapshot(ctx context.Context, ref string) (Snapshot, error) {
	var sn Snapshot
	err := c.do(ctx, http.MethodGet, pathf("/v1/snapshots/%s", ref), nil, nil, &sn)
	return sn, err
}

// DeleteSnapshot deletes one of the team's snapshots by ID or name.
// Capsules started from it are not touched. A snapshot being created, or
// one a template is made from (delete the template first), is
// ErrConflict; an unknown one ErrNotFound.
func (c *Client) DeleteSnapshot(ctx context.Context, ref string) error {
	return c.do(ctx, http.MethodDelete, pathf("/v1/snapshots/%s", ref), nil, nil, nil)
}

// CreateTemplate makes the template name from one of the team's snapshots
// (its ID or name): the team's capsules created with that template start
// from the snapshot.
func (c *Client) CreateTemplate(ctx context.Context, name, fromSnapshot string) (Template, error) {
	var t Template
	err := c.do(ctx, http.MethodPost, "/v1/templates", nil, CreateTemplateRequest{Name: name, FromSnapshot: fromSnapshot}, &t)
	return t, err
}

// DeleteTemplate deletes a template made from a snapshot; the snapshot
// stays.
func (c *Client) DeleteTemplate(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, pathf("/v1/templates/%s", name), nil, nil, nil)
}

// SetTemplatePool sets the warm pool of template name, made from a
// snapshot: its host keeps size capsules restored from the snapshot and
// ready, so that a create of the template takes milliseconds. Zero
// removes the pool.
func (c *Client) SetTemplatePool(ctx context.Context, name string, size int) (Template, error) {
	var t Template
	err := c.do(ctx, http.MethodPut, pathf("/v1/templates/%s/pool", name), nil, TemplatePoolRequest{Size: size}, &t)
	return t, err
}
