package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/proto"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/network"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/rootfs"
	"nestbox.dev/internal/template"
)

// The steps of a create, in order; failAt hooks run after each.
const (
	stepValidate = "validate"
	stepTemplate = "template"
	stepDir      = "dir"
	stepNetwork  = "network"
	stepRootfs   = "rootfs"
	stepState    = "state"
	stepDriver   = "driver"
	stepHealth   = "health"
	stepInit     = "init"
	stepRunning  = "running"
)

var createSteps = []string{stepValidate, stepTemplate, stepDir, stepNetwork, stepRootfs, stepState, stepDriver, stepHealth, stepInit, stepRunning}

// cleanupStack collects the undo of each step that made something; unwind
// runs them in reverse order.
type cleanupStack []struct {
	name string
	fn   func(ctx context.Context) error
}

func (c *cleanupStack) push(name string, fn func(ctx context.Context) error) {
	*c = append(*c, struct {
		name string
		fn   func(ctx context.Context) error
	}{name, fn})
}

// unwind undoes every step, going on past errors, which it returns joined.
func (c cleanupStack) unwind(ctx context.Context) error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		if err := c[i].fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("undo %s: %w", c[i].name, err))
		}
	}
	return errors.Join(errs...)
}

// create makes a sandbox and returns once its envd answers and is
// initialised: from a warm pool when one holds a sandbox for cfg (see
// pool.go), else cold. On error nothing of the sandbox is left. The
// request's ctx bounds the creation; the sandbox then lives until
// destroyed or timed out.
func (a *Agent) create(ctx context.Context, req *agentpb.SandboxConfig) (*agentpb.Sandbox, error) {
	if req.GetSnapshotId() != "" {
		return a.createFromSnapshot(ctx, req, false)
	}
	cfg, opts, err := a.resolveConfig(req)
	if err != nil {
		return nil, err
	}
	if out, ok, err := a.claim(ctx, cfg, opts); ok {
		return out, err
	}
	return a.start(ctx, cfg, opts, false)
}

// start makes sandbox cfg.Id from its template. A pooled one (the
// sandbox of a warm pool: cfg.Id is its runtime name) is made the same
// way but sends no events, takes no room from memory-tier sandboxes,
// stays within the pools' memory budget and ends in statusPooled, without
// a timeout.
func (a *Agent) start(ctx context.Context, cfg *agentpb.SandboxConfig, opts network.Options, pooled bool) (_ *agentpb.Sandbox, err error) {
	sb := &sandbox{
		id:     cfg.Id,
		rid:    cfg.Id,
		dir:    filepath.Join(a.sandboxesDir(), cfg.Id),
		log:    a.log.With("sandbox", cfg.Id),
		cfg:    cfg,
		status: statusCreating,
	}
	if pooled {
		sb.pooled = true
		sb.log = a.log.With("pooled_sandbox", cfg.Id, "template", cfg.Template)
	}
	// Register first, holding op: a concurrent create of the same ID fails
	// and a concurrent destroy waits for this create to finish.
	// Admission and registration happen under one hold of a.mu, so two
	// creates cannot both take the last room.
	capacity, err := a.measure(true)
	if err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
	}
	sb.op.Lock()
	defer sb.op.Unlock()
	a.mu.Lock()
	if _, ok := a.sandboxes[sb.id]; ok {
		a.mu.Unlock()
		return nil, errdefs.AlreadyExists("sandbox %s exists", sb.id)
	}
	if pooled {
		if err := a.admitPooled(capacity, cfg); err != nil {
			a.mu.Unlock()
			a.prom.observeRefusal("pool", err)
			return nil, err
		}
	} else if err := a.admit(capacity, cfg); err != nil {
		a.mu.Unlock()
		// Sandboxes paused in memory give it up for a create.
		err = a.admitOrDemote(ctx, func() error {
			c, err := a.measure(true)
			if err != nil {
				return err
			}
			a.mu.Lock()
			if _, ok := a.sandboxes[sb.id]; ok {
				a.mu.Unlock()
				return errdefs.AlreadyExists("sandbox %s exists", sb.id)
			}
			if err := a.admit(c, cfg); err != nil {
				a.mu.Unlock()
				return err
			}
			return nil // a.mu stays held for the registration
		}, err)
		if err != nil {
			a.prom.observeRefusal("create", err)
			return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
		}
	}
	a.sandboxes[sb.id] = sb
	a.mu.Unlock()

	start := time.Now()
	var undo cleanupStack
	createdSent := false
	defer func() {
		if err == nil {
			return
		}
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
		defer cancel()
		if uerr := undo.unwind(bg); uerr != nil {
			sb.log.Error("cleanup after failed create left something behind", "err", uerr)
		}
		a.forget(sb)
		if createdSent && !pooled {
			a.emit(sb.id, EventStopped)
		}
	}()
	// step runs the test hook after a step; in production it is a no-op.
	step := func(name string) error {
		if a.cfg.failAt == nil {
			return nil
		}
		if err := a.cfg.failAt(name); err != nil {
			return fmt.Errorf("create sandbox %s: %s: %w", sb.id, name, err)
		}
		return nil
	}

	if err := step(stepValidate); err != nil {
		return nil, err
	}

	sb.tplPath, err = a.templates.Ensure(ctx, cfg.Template)
	if err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
	}
	sb.envdVersion = a.templates.EnvdVersion(ctx, cfg.Template)
	if err := step(stepTemplate); err != nil {
		return nil, err
	}

	if err := os.Mkdir(sb.dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, errdefs.AlreadyExists("sandbox %s: directory %s exists", sb.id, sb.dir)
		}
		return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
	}
	undo.push(stepDir, func(context.Context) error { return os.RemoveAll(sb.dir) })
	// The state file is written before each step that makes something
	// outside the directory, so a crash at any point leaves a record of
	// what to remove.
	if err := a.writeState(sb); err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
	}
	if err := step(stepDir); err != nil {
		return nil, err
	}

	sb.net, err = a.net.Setup(ctx, sb.rid, opts)
	if err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
	}
	undo.push(stepNetwork, func(ctx context.Context) error { return a.net.Teardown(ctx, sb.net) })
	if err := step(stepNetwork); err != nil {
		return nil, err
	}
	if err := a.writeState(sb); err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
	}

	info, err := a.templates.Get(cfg.Template)
	if err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
	}
	size := rootfs.Size(cfg.DiskBytes, info.SizeBytes)
	// Admission of other creates reads every sandbox's size and layer
	// under a.mu: change them under it too.
	a.mu.Lock()
	cfg.DiskBytes = size
	a.mu.Unlock()
	layer, err := a.layers.Mount(ctx, sb.tplPath, sb.dir, size)
	if err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
	}
	a.mu.Lock()
	sb.layer = layer
	a.mu.Unlock()
	undo.push(stepRootfs, func(ctx context.Context) error { return a.layers.Unmount(ctx, sb.layer) })
	// The logs live on the layer's file system, beside (not in) what the
	// sandbox sees: they count against its disk limit and go with it.
	if err := os.Mkdir(logDir(sb), 0o700); err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
	}
	if err := step(stepRootfs); err != nil {
		return nil, err
	}

	if err := a.writeState(sb); err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
	}
	undo.push(stepState, func(context.Context) error { return removeState(sb.dir) })
	if err := step(stepState); err != nil {
		return nil, err
	}

	if err := a.driver.Create(ctx, driverSpec(sb)); err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
	}
	undo.push(stepDriver, func(ctx context.Context) error { return a.driver.Destroy(ctx, sb.rid) })
	if !pooled {
		a.emit(sb.id, EventCreated)
	}
	createdSent = true
	if err := step(stepDriver); err != nil {
		return nil, err
	}

	hctx, cancel := context.WithTimeout(ctx, a.cfg.ReadyTimeout)
	err = a.envd.waitHealthy(hctx, sb.net.Addr())
	cancel()
	if err != nil {
		return nil, fmt.Errorf("create sandbox %s: envd did not answer within %s: %w", sb.id, a.cfg.ReadyTimeout, err)
	}
	if err := step(stepHealth); err != nil {
		return nil, err
	}

	if err := a.envd.sendInit(ctx, sb.net.Addr(), cfg); err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
	}
	if err := step(stepInit); err != nil {
		return nil, err
	}

	if pooled {
		return a.pooledReady(sb, start)
	}
	sb.startedAt = time.Now()
	sb.proxy = newSandboxProxy(a, sb)
	endAt := sb.startedAt.Add(time.Duration(cfg.TimeoutSeconds) * time.Second)
	a.mu.Lock()
	sb.status = statusRunning
	sb.endAt = endAt
	a.mu.Unlock()
	if err := a.writeState(sb); err != nil {
		a.mu.Lock()
		sb.status = statusCreating
		a.mu.Unlock()
		return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
	}
	if err := step(stepRunning); err != nil {
		a.mu.Lock()
		sb.status = statusCreating
		a.mu.Unlock()
		return nil, err
	}
	a.emit(sb.id, EventRunning)
	sb.log.Info("sandbox running", "template", cfg.Template, "took", time.Since(start), "address", sb.net.Addr())
	return a.toProto(sb), nil
}

// driverSpec is what the driver needs to start sb (or restore it).
func driverSpec(sb *sandbox) driver.Spec {
	return driver.Spec{
		ID:       sb.rid,
		Dir:      sb.dir,
		LogDir:   logDir(sb),
		Rootfs:   sb.layer.Root,
		NetNS:    sb.net.NetNS,
		VCPUs:    int(sb.cfg.Vcpus),
		MemoryMB: int(sb.cfg.MemoryMb),
		Args:     []string{"/usr/bin/envd"},
	}
}

// checkConfig is the control plane's check of a resolved config, again:
// the agent's token may be used by other tools than the control plane.
func checkConfig(cfg *agentpb.SandboxConfig) error {
	return capsulespec.Check(capsulespec.Spec{
		Template:       cfg.Template,
		VCPUs:          int(cfg.Vcpus),
		MemoryMB:       int(cfg.MemoryMb),
		DiskMB:         int(cfg.DiskBytes >> 20),
		TimeoutSeconds: int(cfg.TimeoutSeconds),
		EnvVars:        cfg.EnvVars,
		Metadata:       cfg.Metadata,
		AllowOut:       cfg.AllowOut,
		DenyOut:        cfg.DenyOut,
		Workdir:        cfg.DefaultWorkdir,
	}, capsulespec.Limits{})
}

// networkOptions are the egress options of a resolved config.
func networkOptions(cfg *agentpb.SandboxConfig) (network.Options, error) {
	opts := network.Options{Internet: cfg.Internet}
	var err error
	if opts.AllowOut, err = capsulespec.ParsePrefixes("allow_out", cfg.AllowOut); err != nil {
		return network.Options{}, err
	}
	if opts.DenyOut, err = capsulespec.ParsePrefixes("deny_out", cfg.DenyOut); err != nil {
		return network.Options{}, err
	}
	return opts, nil
}

// resolveConfig validates a request and fills in the defaults. The result
// is a copy: it is what the state file and GetSandbox report.
func (a *Agent) resolveConfig(req *agentpb.SandboxConfig) (*agentpb.SandboxConfig, network.Options, error) {
	if req == nil {
		req = &agentpb.SandboxConfig{}
	}
	cfg := proto.Clone(req).(*agentpb.SandboxConfig)
	// Capsule IDs are made by the control plane alone: a host never
	// invents one it would have to report back.
	if cfg.Id == "" {
		return nil, network.Options{}, errdefs.Invalid("sandbox id is required (the control plane names sandboxes)")
	}
	if !capsulespec.ValidID(cfg.Id) {
		return nil, network.Options{}, errdefs.Invalid("sandbox id %q must be %d characters [a-z0-9]", cfg.Id, capsulespec.IDLength)
	}
	if cfg.Template == "" {
		cfg.Template = capsulespec.DefaultTemplate
	}
	if !template.Known(cfg.Template) {
		return nil, network.Options{}, errdefs.NotFound("unknown template %q", cfg.Template)
	}
	if cfg.Vcpus == 0 {
		cfg.Vcpus = uint32(a.cfg.DefaultVCPUs)
	}
	if cfg.MemoryMb == 0 {
		cfg.MemoryMb = uint32(a.cfg.DefaultMemoryMB)
	}
	if cfg.DiskBytes < 0 {
		return nil, network.Options{}, errdefs.Invalid("disk_bytes %d: must not be negative", cfg.DiskBytes)
	}
	if cfg.DiskBytes == 0 {
		cfg.DiskBytes = a.cfg.DefaultRootfsSize
	}
	if cfg.TimeoutSeconds == 0 {
		cfg.TimeoutSeconds = uint32(a.cfg.DefaultTimeout / time.Second)
	}
	if err := checkConfig(cfg); err != nil {
		return nil, network.Options{}, err
	}
	opts, err := networkOptions(cfg)
	if err != nil {
		return nil, network.Options{}, err
	}
	return cfg, opts, nil
}
