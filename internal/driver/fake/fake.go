// Package fake is an in-memory sandbox driver for unit tests of the host
// agent: it records sandboxes and their states without running anything,
// and can be told to fail. It passes the drivertest conformance suite.
// Imported by tests only.
package fake

import (
	"context"
	"os"
	"sync"
	"time"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/errdefs"
)

// Driver is a fake driver. The zero value is ready to use.
type Driver struct {
	// FailCreate, when set, is returned by Create for every spec it
	// matches (nil matches all).
	FailCreate error

	// mu guards sandboxes.
	mu        sync.Mutex
	sandboxes map[string]*sandbox
}

type sandbox struct {
	spec    driver.Spec
	state   driver.State
	started time.Time
}

var (
	_ driver.Driver       = (*Driver)(nil)
	_ driver.Pauser       = (*Driver)(nil)
	_ driver.Checkpointer = (*Driver)(nil)
)

// Name returns "fake".
func (d *Driver) Name() string { return "fake" }

// Create records the sandbox as running.
func (d *Driver) Create(ctx context.Context, spec driver.Spec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if spec.ID == "" {
		return errdefs.Invalid("empty sandbox id")
	}
	if d.FailCreate != nil {
		return d.FailCreate
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sandboxes == nil {
		d.sandboxes = map[string]*sandbox{}
	}
	if _, ok := d.sandboxes[spec.ID]; ok {
		return errdefs.AlreadyExists("sandbox %s exists", spec.ID)
	}
	d.sandboxes[spec.ID] = &sandbox{spec: spec, state: driver.StateRunning, started: time.Now()}
	return nil
}

// Destroy forgets the sandbox.
func (d *Driver) Destroy(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.sandboxes, id)
	return nil
}

// State returns the recorded state.
func (d *Driver) State(ctx context.Context, id string) (driver.State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.sandboxes[id]; ok {
		return s.state, nil
	}
	return driver.StateNotFound, nil
}

// Stats returns a reading that grows with the sandbox's age.
func (d *Driver) Stats(ctx context.Context, id string) (driver.Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.sandboxes[id]
	if !ok {
		return driver.Stats{}, errdefs.NotFound("sandbox %s not found", id)
	}
	return driver.Stats{At: time.Now(), CPUNanos: uint64(time.Since(s.started)), MemoryBytes: 16 << 20, Pids: 1}, nil
}

// List returns the recorded IDs.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]string, 0, len(d.sandboxes))
	for id := range d.sandboxes {
		ids = append(ids, id)
	}
	return ids, nil
}

// Crash marks a sandbox stopped, as if its runtime died.
func (d *Driver) Crash(id string) {
	d.setState(id, driver.StateStopped, driver.StateRunning)
}

// Pause marks a running sandbox paused.
func (d *Driver) Pause(ctx context.Context, id string) error {
	return d.transition(id, driver.StateRunning, driver.StatePaused)
}

// Resume marks a paused sandbox running.
func (d *Driver) Resume(ctx context.Context, id string) error {
	return d.transition(id, driver.StatePaused, driver.StateRunning)
}

// Checkpoint writes a marker file into imageDir and forgets the sandbox.
func (d *Driver) Checkpoint(ctx context.Context, id, imageDir string) error {
	d.mu.Lock()
	s, ok := d.sandboxes[id]
	d.mu.Unlock()
	if !ok {
		return errdefs.NotFound("sandbox %s not found", id)
	}
	if s.state != driver.StateRunning {
		return errdefs.Conflict("sandbox %s is %s", id, s.state)
	}
	if err := os.MkdirAll(imageDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(imageDir+"/fake-checkpoint", []byte(id), 0o600); err != nil {
		return err
	}
	return d.Destroy(ctx, id)
}

// Restore recreates a checkpointed sandbox.
func (d *Driver) Restore(ctx context.Context, spec driver.Spec, imageDir string) error {
	if _, err := os.Stat(imageDir + "/fake-checkpoint"); err != nil {
		return errdefs.NotFound("no checkpoint in %s", imageDir)
	}
	return d.Create(ctx, spec)
}

func (d *Driver) transition(id string, from, to driver.State) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.sandboxes[id]
	if !ok {
		return errdefs.NotFound("sandbox %s not found", id)
	}
	if s.state != from {
		return errdefs.Conflict("sandbox %s is %s, not %s", id, s.state, from)
	}
	s.state = to
	return nil
}

func (d *Driver) setState(id string, to, from driver.State) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.sandboxes[id]; ok && s.state == from {
		s.state = to
	}
}
