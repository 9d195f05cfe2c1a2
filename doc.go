// Package nestbox is the Go SDK of Nestbox, a self-hosted platform of
// sandboxes ("capsules") for AI agents. It talks to a Nestbox control plane
// over its REST and WebSocket API (/v1) and is the only package of this
// module meant to be imported by other programs; the nestbox CLI is built on
// it alone.
//
// A Client holds the control plane's URL and an API key; by default they
// come from the environment variables NESTBOX_URL and NESTBOX_API_KEY:
//
//	c, err := nestbox.New(nestbox.Config{})
//	h, err := c.Create(ctx, nestbox.CreateCapsuleRequest{Template: "base"})
//	defer h.Kill(context.WithoutCancel(ctx))
//
// Create waits until the capsule runs. A Handle then drives one capsule:
//
//   - commands: Exec runs one to completion and collects its output;
//     ExecStream streams a process's output and stdin over a WebSocket;
//     Start runs one in the background and Attach reconnects to it;
//   - terminals: PTY opens an interactive terminal (an io.ReadWriteCloser);
//   - files: ReadFile and WriteFile stream contents, ListDir, Stat, MakeDir
//     and Remove manage the tree;
//   - the capsule itself: Info, Wait, SetTimeout, Metrics, Events, Kill;
//   - its ports: ProxyURL together with Client.HTTPClient.
//
// Every call takes a context. Errors answered by the API are *APIError;
// errors.Is maps them onto a few kinds (ErrNotFound, ErrConflict,
// ErrInvalid, ...), so callers never match on messages.
//
// The JSON objects of the API (Capsule, ExecRequest, Entry, ...) are shared
// with the control plane and defined in this package.
package nestbox
