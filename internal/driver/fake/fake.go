// Package fake is an in-memory sandbox driver for unit tests of the host
// agent: it records sandboxes and their states without running a runtime,
// and can be told to fail. With EnvdAddr set, every sandbox it runs serves
// a real envd (package envd in dev mode) in the test's own process, so the
// agent's health checks, /init, snapshot preparation and proxy work
// against it without root. It passes the drivertest conformance suite.
// Imported by tests only.
package fake

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/errdefs"
)

// Driver is a fake driver. The zero value is ready to use and runs
// nothing but records.
type Driver struct {
	// FailCreate, when set, is returned by Create for every spec it
	// matches (nil matches all).
	FailCreate error
	// EnvdAddr, if set, says where the envd of each sandbox listens (in a
	// real sandbox: port 49983 of its address); port 0 picks a free one,
	// see EnvdAddress. A running sandbox serves envd there, a paused one
	// holds new connections unanswered until it is resumed (its
	// netstack is frozen), a crashed, destroyed or checkpointed one
	// refuses them. A checkpoint keeps envd's settings (env vars, access
	// token, default user and workdir) in the images, as a memory image
	// would, and a restore brings them back. nil runs no envd.
	EnvdAddr func(spec driver.Spec) (netip.AddrPort, error)
	// Logger receives the envds' logs; nil discards them.
	Logger *slog.Logger

	// mu guards sandboxes and each sandbox's fields.
	mu        sync.Mutex
	sandboxes map[string]*sandbox
}

type sandbox struct {
	spec    driver.Spec
	state   driver.State
	started time.Time
	envd    *envdServer // nil without EnvdAddr, and once it stopped
}

var (
	_ driver.Driver       = (*Driver)(nil)
	_ driver.Pauser       = (*Driver)(nil)
	_ driver.Checkpointer = (*Driver)(nil)
)

// checkpointFile is the fake's image: what a restore needs.
const checkpointFile = "fake-checkpoint"

// image is the content of checkpointFile.
type image struct {
	ID   string     `json:"id"`
	Envd *envdState `json:"envd,omitempty"`
}

// Name returns "fake".
func (d *Driver) Name() string { return "fake" }

// Create records the sandbox as running and starts its envd.
func (d *Driver) Create(ctx context.Context, spec driver.Spec) error {
	return d.start(ctx, spec, nil)
}

// start records spec's sandbox as running, with an envd that has the
// settings saved (nil: fresh).
func (d *Driver) start(ctx context.Context, spec driver.Spec, saved *envdState) error {
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
	if d.sandboxes == nil {
		d.sandboxes = map[string]*sandbox{}
	}
	if _, ok := d.sandboxes[spec.ID]; ok {
		d.mu.Unlock()
		return errdefs.AlreadyExists("sandbox %s exists", spec.ID)
	}
	// Recorded first: the ID is taken while envd starts.
	s := &sandbox{spec: spec, state: driver.StateRunning, started: time.Now()}
	d.sandboxes[spec.ID] = s
	d.mu.Unlock()
	if d.EnvdAddr == nil {
		return nil
	}
	srv, err := d.startEnvd(spec, saved)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		delete(d.sandboxes, spec.ID)
		return fmt.Errorf("start sandbox %s: %w", spec.ID, err)
	}
	s.envd = srv
	return nil
}

// startEnvd serves a new envd for spec where EnvdAddr says.
func (d *Driver) startEnvd(spec driver.Spec, saved *envdState) (*envdServer, error) {
	addr, err := d.EnvdAddr(spec)
	if err != nil {
		return nil, err
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return startEnvd(addr, spec.Rootfs, saved, log.With("sandbox", spec.ID))
}

// Destroy forgets the sandbox and stops its envd.
func (d *Driver) Destroy(ctx context.Context, id string) error {
	d.mu.Lock()
	var e *envdServer
	if s := d.sandboxes[id]; s != nil {
		e = s.envd
	}
	delete(d.sandboxes, id)
	d.mu.Unlock()
	e.stop()
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

// EnvdAddress returns where sandbox id's envd listens, if it serves one.
func (d *Driver) EnvdAddress(id string) (netip.AddrPort, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.sandboxes[id]
	if !ok || s.envd == nil {
		return netip.AddrPort{}, false
	}
	return s.envd.addr, true
}

// Crash marks a running sandbox stopped and stops its envd, as if its
// runtime died.
func (d *Driver) Crash(id string) {
	d.mu.Lock()
	s, ok := d.sandboxes[id]
	if !ok || s.state != driver.StateRunning {
		d.mu.Unlock()
		return
	}
	s.state = driver.StateStopped
	e := s.envd
	s.envd = nil
	d.mu.Unlock()
	e.stop()
}

// Pause marks a running sandbox paused; its envd answers nothing new
// until Resume.
func (d *Driver) Pause(ctx context.Context, id string) error {
	return d.transition(id, driver.StateRunning, driver.StatePaused, func(e *envdServer) { e.ln.freeze() })
}

// Resume marks a paused sandbox running and lets its envd serve again.
func (d *Driver) Resume(ctx context.Context, id string) error {
	return d.transition(id, driver.StatePaused, driver.StateRunning, func(e *envdServer) { e.ln.thaw() })
}

// Checkpoint writes the sandbox's image (its ID and envd's settings) into
// imageDir, stops its envd and forgets it. A paused sandbox cannot be
// checkpointed (errdefs.ErrConflict), as with runsc.
func (d *Driver) Checkpoint(ctx context.Context, id, imageDir string) error {
	d.mu.Lock()
	s, ok := d.sandboxes[id]
	var (
		st driver.State
		e  *envdServer
	)
	if ok {
		st, e = s.state, s.envd
	}
	d.mu.Unlock()
	if !ok {
		return errdefs.NotFound("sandbox %s not found", id)
	}
	if st != driver.StateRunning {
		return errdefs.Conflict("sandbox %s is %s", id, st)
	}
	img := image{ID: id, Envd: e.state()}
	b, err := json.Marshal(img)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(imageDir, 0o700); err != nil {
		return fmt.Errorf("checkpoint sandbox %s: %w", id, err)
	}
	if err := os.WriteFile(filepath.Join(imageDir, checkpointFile), b, 0o600); err != nil {
		return fmt.Errorf("checkpoint sandbox %s: %w", id, err)
	}
	return d.Destroy(ctx, id)
}

// Restore starts a checkpointed sandbox again, its envd with the settings
// it had. As with runsc, the image may be restored under another ID (a
// fork), and more than once.
func (d *Driver) Restore(ctx context.Context, spec driver.Spec, imageDir string) error {
	b, err := os.ReadFile(filepath.Join(imageDir, checkpointFile))
	if err != nil {
		return errdefs.NotFound("no checkpoint in %s: %v", imageDir, err)
	}
	var img image
	if err := json.Unmarshal(b, &img); err != nil {
		return fmt.Errorf("restore sandbox %s: image: %w", spec.ID, err)
	}
	return d.start(ctx, spec, img.Envd)
}

// transition moves a sandbox from one state to another, applying change
// to its envd if it serves one.
func (d *Driver) transition(id string, from, to driver.State, change func(*envdServer)) error {
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
	if s.envd != nil {
		change(s.envd)
	}
	return nil
}
