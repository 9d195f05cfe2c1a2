// Package driver is the contract between the host agent and the runtimes
// that run sandboxes (gVisor's runsc, Firecracker, a fake for unit tests).
// The agent prepares a sandbox's working directory, root filesystem and
// network namespace; a driver starts, inspects and stops the sandbox inside
// them. Optional abilities (pause, checkpoint/restore) are separate small
// interfaces that a driver may also implement. Every driver passes the
// conformance suite in package drivertest.
//
// Imported by the host agent and by drivers.
package driver

import (
	"context"
	"time"
)

// Spec is everything a driver needs to start one sandbox.
type Spec struct {
	// ID names the sandbox. It is fixed-width and no ID is a prefix of
	// another (runsc matches IDs by prefix).
	ID string
	// Dir is the sandbox's own working directory, created by the agent and
	// removed with the sandbox. The driver keeps its files (bundle, logs,
	// runtime state) under it and nowhere else.
	Dir string
	// LogDir is where the driver writes the sandbox's console output and
	// its own logs, which the tenant can grow; "" means Dir. The agent
	// puts it on the sandbox's writable-layer file system, so that they
	// count against the sandbox's own disk limit, not the host's.
	LogDir string
	// Rootfs is the prepared root filesystem: a directory for gVisor, an
	// image file for Firecracker. The driver does not remove it.
	Rootfs string
	// NetNS is the path of the network namespace the sandbox joins; ""
	// means no network (tests only).
	NetNS string
	// Hostname inside the sandbox; "" means "sandbox".
	Hostname string
	// DNS lists the sandbox's name servers; nil means public resolvers.
	DNS []string
	// VCPUs and MemoryMB bound the sandbox; zero means 1 vCPU and 512 MiB.
	VCPUs    int
	MemoryMB int
	// Args is the first process and its arguments (envd); Env its
	// environment as KEY=VALUE.
	Args []string
	Env  []string
}

// State is what a driver knows about a sandbox.
type State string

// States. A sandbox the driver has never heard of, or has forgotten after
// Destroy, is StateNotFound.
const (
	StateRunning  State = "running"
	StatePaused   State = "paused"
	StateStopped  State = "stopped"
	StateNotFound State = "not-found"
)

// Stats is a point-in-time reading of a sandbox's resource use.
type Stats struct {
	At          time.Time
	CPUNanos    uint64 // cumulative CPU time
	MemoryBytes uint64
	Pids        uint64
	RxBytes     uint64
	TxBytes     uint64
}

// Driver runs sandboxes. Methods are safe for concurrent use on different
// IDs; callers serialise calls on the same ID.
type Driver interface {
	// Name is the driver's name in configuration and logs ("gvisor").
	Name() string
	// Create starts the sandbox and returns once its first process runs.
	// On error nothing the driver made is left behind. An ID in use is
	// errdefs.ErrAlreadyExists.
	Create(ctx context.Context, spec Spec) error
	// Destroy stops the sandbox and removes the driver's resources. It is
	// idempotent: an unknown ID is not an error.
	Destroy(ctx context.Context, id string) error
	// State reports the sandbox's state.
	State(ctx context.Context, id string) (State, error)
	// Stats reads the sandbox's resource use. Unknown IDs are
	// errdefs.ErrNotFound.
	Stats(ctx context.Context, id string) (Stats, error)
	// List returns the IDs of the sandboxes the driver runs, so that a
	// restarted agent can adopt them.
	List(ctx context.Context) ([]string, error)
}

// Pauser is a driver that can stop a sandbox's execution in memory and
// continue it.
type Pauser interface {
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
}

// Settler is a driver whose runtime commands may outlive the process
// that started them. Settle waits for (or, past a bound, ends) the
// commands a previous process left running, so that the states read
// after it are not about to change. A restarted agent calls it before it
// reads any sandbox's state.
type Settler interface {
	Settle(ctx context.Context) error
}

// Checkpointer is a driver that can write a running sandbox's memory and
// state to a directory, ending the sandbox, and restore it from there with
// the same processes. When Checkpoint returns, the images are complete and
// nothing of the sandbox runs or writes any more; the ID is free for a
// Restore. A paused sandbox cannot be checkpointed (errdefs.ErrConflict):
// resume it first.
type Checkpointer interface {
	Checkpoint(ctx context.Context, id, imageDir string) error
	Restore(ctx context.Context, spec Spec, imageDir string) error
}
