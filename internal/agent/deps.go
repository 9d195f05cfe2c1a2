package agent

import (
	"context"
	"syscall"

	"nestbox.dev/internal/network"
	"nestbox.dev/internal/rootfs"
	"nestbox.dev/internal/template"
)

// The agent's dependencies besides its driver. Each is an interface here,
// where it is used, so that tests can run the agent's logic over fakes
// (no root, no runsc); a nil field of Config means the real one.

// Network builds and removes the sandboxes' networks. A sandbox's network
// is plain data (network.Sandbox) that the state file keeps. The methods
// are *network.Manager's, which is the default (kernelNetwork), plus
// DialControl; callers serialise calls on one sandbox.
type Network interface {
	// Setup builds sandbox id's network in a free slot. On error nothing
	// is left and the slot is free.
	Setup(ctx context.Context, id string, opts network.Options) (network.Sandbox, error)
	// Teardown removes sb's network and frees its slot. It is idempotent.
	// A Slot of -1 is a leftover whose slot is unknown: what can be found
	// by its ID goes.
	Teardown(ctx context.Context, sb network.Sandbox) error
	// Release removes what sb's network holds on the host but keeps its
	// slot, and so its address, for it (a paused sandbox); Rebuild builds
	// it again in that slot. Both undo themselves on error.
	Release(ctx context.Context, sb network.Sandbox) error
	Rebuild(ctx context.Context, sb network.Sandbox, opts network.Options) (network.Sandbox, error)
	// SetEgress replaces the egress rules of sb's built network with
	// opts' (a warm pool's sandbox taking a create's rules).
	SetEgress(ctx context.Context, sb network.Sandbox, opts network.Options) error
	// Readd puts the guest's address and route back on the sandbox's
	// interface, which the runtime takes off when it starts: a restore
	// into the network a checkpointed sandbox left (a fork's source)
	// needs them. It is idempotent.
	Readd(ctx context.Context, sb network.Sandbox) error
	// Adopt takes the slot of a sandbox that survived an agent restart
	// and makes sure its network works; Reserve takes only the slot (a
	// paused sandbox, whose network is released). A slot that another
	// sandbox holds is errdefs.ErrConflict.
	Adopt(sb network.Sandbox) error
	Reserve(sb network.Sandbox) error
	// Leftovers lists the sandbox IDs that have a network on the host, so
	// that a restarted agent removes those it has no state file for.
	Leftovers() ([]string, error)
	// DialControl is the net.Dialer.Control of every connection of the
	// agent to a sandbox (envd's health and init, the proxy): the kernel
	// network marks the socket (network.MarkControl), which its rules
	// require of whatever reaches a guest.
	DialControl(network, address string, c syscall.RawConn) error
}

// kernelNetwork is the default Network: network namespaces, veths and nft
// rules over netlink (needs root).
type kernelNetwork struct {
	*network.Manager
}

func (kernelNetwork) DialControl(netw, address string, c syscall.RawConn) error {
	return network.MarkControl(netw, address, c)
}

// Layers makes the sandboxes' writable layers over their templates. The
// default (overlayLayers) is internal/rootfs: a sparse ext4 image on a
// loop device under an overlay (needs root). Every method but Mount is
// idempotent.
type Layers interface {
	// Mount makes the writable layer of size bytes in dir over the
	// template at lower; on error nothing it made is left.
	Mount(ctx context.Context, lower, dir string, size int64) (rootfs.Layer, error)
	// Unmount removes the layer and what holds it.
	Unmount(ctx context.Context, l rootfs.Layer) error
	// Remount mounts a kept layer again where it was (after a reboot),
	// keeping what it holds.
	Remount(ctx context.Context, l rootfs.Layer) error
	// Sync puts everything written to the layer on the host's disk.
	Sync(l rootfs.Layer) error
	// Clone copies the layer of a stopped, synced sandbox into dir as a
	// new layer over the same template, not mounted (Remount mounts it;
	// Unmount removes it). On error nothing it made is left.
	Clone(ctx context.Context, l rootfs.Layer, dir string) (rootfs.Layer, error)
}

// overlayLayers is the default Layers: internal/rootfs.
type overlayLayers struct{}

func (overlayLayers) Mount(ctx context.Context, lower, dir string, size int64) (rootfs.Layer, error) {
	return rootfs.Mount(ctx, lower, dir, size)
}

func (overlayLayers) Unmount(ctx context.Context, l rootfs.Layer) error {
	return rootfs.Unmount(ctx, l)
}

func (overlayLayers) Remount(ctx context.Context, l rootfs.Layer) error {
	return rootfs.Remount(ctx, l)
}

func (overlayLayers) Sync(l rootfs.Layer) error { return rootfs.Sync(l) }

func (overlayLayers) Clone(ctx context.Context, l rootfs.Layer, dir string) (rootfs.Layer, error) {
	return rootfs.Clone(l, dir)
}

// Templates provides the root filesystems sandboxes start from. The
// default is a *template.Store in Config.TemplateDir.
type Templates interface {
	// Ensure returns the rootfs directory of template name, building it
	// first if needed.
	Ensure(ctx context.Context, name string) (string, error)
	// Get describes a built template; one not built is
	// errdefs.ErrNotFound.
	Get(name string) (template.Info, error)
	// EnvdVersion is the version of the envd in template name, from its
	// metadata ("" if unknown): nothing in a template runs on the host.
	EnvdVersion(ctx context.Context, name string) string
}

var (
	_ Network   = kernelNetwork{}
	_ Layers    = overlayLayers{}
	_ Templates = (*template.Store)(nil)
)
