package envdclient

import (
	"context"
	"fmt"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/filesystempb"
)

// The filesystem RPCs act as user ("" means the capsule's default user);
// a relative path is taken from that user's home.

// ListDir lists the directory path. depth 0 or 1 gives its children; depth
// N descends N levels, each directory right before its own entries. Symlinks
// below path are not followed. A path that is not a directory is
// ErrInvalid.
func (c *Client) ListDir(ctx context.Context, path, user string, depth int) ([]nestbox.Entry, error) {
	op := "list dir " + path
	if depth < 0 {
		return nil, fmt.Errorf("%s: %w", op, errdefs.Invalid("negative depth %d", depth))
	}
	var res *connect.Response[filesystempb.ListDirResponse]
	err := call(ctx, op, func(ctx context.Context) (err error) {
		res, err = c.fs.ListDir(ctx, request(&filesystempb.ListDirRequest{Path: path, Depth: uint32(depth)}, user))
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]nestbox.Entry, 0, len(res.Msg.GetEntries()))
	for _, e := range res.Msg.GetEntries() {
		out = append(out, entryOf(e))
	}
	return out, nil
}

// Stat describes path without following a final symlink.
func (c *Client) Stat(ctx context.Context, path, user string) (nestbox.Entry, error) {
	var res *connect.Response[filesystempb.StatResponse]
	err := call(ctx, "stat "+path, func(ctx context.Context) (err error) {
		res, err = c.fs.Stat(ctx, request(&filesystempb.StatRequest{Path: path}, user))
		return err
	})
	if err != nil {
		return nestbox.Entry{}, err
	}
	return entryOf(res.Msg.GetEntry()), nil
}

// MakeDir creates the directory path and its missing parents, owned by
// user. An existing directory is ErrAlreadyExists; an existing file,
// ErrInvalid.
func (c *Client) MakeDir(ctx context.Context, path, user string) (nestbox.Entry, error) {
	var res *connect.Response[filesystempb.MakeDirResponse]
	err := call(ctx, "make dir "+path, func(ctx context.Context) (err error) {
		res, err = c.fs.MakeDir(ctx, request(&filesystempb.MakeDirRequest{Path: path}, user))
		return err
	})
	if err != nil {
		return nestbox.Entry{}, err
	}
	return entryOf(res.Msg.GetEntry()), nil
}

// Remove deletes a file, a symlink or a directory with all it holds. As
// with E2B's envd, removing a path that does not exist succeeds.
func (c *Client) Remove(ctx context.Context, path, user string) error {
	return call(ctx, "remove "+path, func(ctx context.Context) error {
		_, err := c.fs.Remove(ctx, request(&filesystempb.RemoveRequest{Path: path}, user))
		return err
	})
}
