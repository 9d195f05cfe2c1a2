package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/network"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/rootfs"
	"nestbox.dev/internal/template"
)

// Warm pools. For each PoolSpec the agent keeps Size sandboxes started and
// idle ("pooled"), so that a create asking for what a pool holds takes one
// instead of starting a runtime: it costs the egress rules and one /init of
// envd (milliseconds) instead of a cold start (hundreds).
//
// Who owns what:
//
//   - A pooled sandbox is an ordinary sandbox of a.sandboxes, made by start
//     with a runtime name of its own ("0" and 19 characters: control
//     planes never make IDs with a "0", so it cannot meet a capsule's), a
//     state file with status "pooled", an envd token only the agent knows
//     and no timeout. It counts in admission like any sandbox; get, list,
//     lookup and the events never show it.
//   - A claim (claim below) moves the runtime, network, layer and directory
//     of a ready pooled sandbox to a new sandbox record under the capsule's
//     ID: from then on the pooled record is gone and the new one owns all of
//     it, as if it had made it. The runtime keeps its name (sandbox.rid).
//     The new record's state file is written before anything else changes:
//     a crash during a claim leaves a sandbox in status creating, which a
//     restarted agent removes as an unfinished create.
//   - The fill loop (fillPools, one goroutine of Run) makes pooled
//     sandboxes one at a time while a pool is short and the pools' memory
//     budget allows, once claims have been quiet for poolRefillDelay, and
//     removes those no pool wants any more (a smaller size, a template
//     version not current, a spec gone after a restart). A cold create
//     that does not fit takes the room of pooled sandboxes first
//     (admitOrDemote), so a pool never makes a create fail.
//   - A restarted agent adopts the pooled sandboxes that still run, as it
//     adopts running ones, and removes the others without an event.
//
// A claimed sandbox carries nothing of the pool: its envd was started for
// the pool and never ran anything else; the claim replaces envd's token
// (authenticated with the pool's), sets the create's env vars, user and
// workdir, and gives the network the create's egress rules.

// PoolSpec configures one warm pool.
type PoolSpec struct {
	// Template is the template of the pool's sandboxes.
	Template string
	// Snapshot, for a pool of a snapshot (SetSnapshotPools; never a
	// flag), is the snapshot its sandboxes are restored from; Template
	// and the sizes are then the snapshot's and left zero here.
	Snapshot string
	// Size is how many idle sandboxes the pool keeps ready.
	Size int
	// VCPUs, MemoryMB and DiskBytes size them; zero means the agent's
	// defaults. A create is served from the pool only when it asks for
	// the same template, vCPUs, memory and disk.
	VCPUs     int
	MemoryMB  int
	DiskBytes int64
}

// MaxPoolSize caps a PoolSpec's size: a pool is a cache of a few starts.
const MaxPoolSize = 256

// DefaultPoolMemoryMB is Config.PoolMemoryMB's default: the memory limits
// of all pooled sandboxes together (16 sandboxes of 512 MiB). An idle
// sandbox uses ~20 MiB of its limit; admission counts limits.
const DefaultPoolMemoryMB = 8192

// ParsePoolSpec parses a pool as the --pool flag gives it:
// TEMPLATE=SIZE, or TEMPLATE=SIZE:VCPUS:MEMORY_MB to size its sandboxes.
func ParsePoolSpec(s string) (PoolSpec, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return PoolSpec{}, errdefs.Invalid("pool %q: want TEMPLATE=SIZE or TEMPLATE=SIZE:VCPUS:MEMORY_MB", s)
	}
	if !template.Known(name) {
		return PoolSpec{}, errdefs.Invalid("pool %q: unknown template %q", s, name)
	}
	f := strings.Split(rest, ":")
	if len(f) != 1 && len(f) != 3 {
		return PoolSpec{}, errdefs.Invalid("pool %q: want TEMPLATE=SIZE or TEMPLATE=SIZE:VCPUS:MEMORY_MB", s)
	}
	n := make([]int, len(f))
	for i, v := range f {
		x, err := strconv.Atoi(v)
		if err != nil || x < 0 || (i > 0 && x == 0) {
			return PoolSpec{}, errdefs.Invalid("pool %q: %q is not a positive number", s, v)
		}
		n[i] = x
	}
	p := PoolSpec{Template: name, Size: n[0]}
	if len(n) == 3 {
		p.VCPUs, p.MemoryMB = n[1], n[2]
	}
	if p.Size > MaxPoolSize {
		return PoolSpec{}, errdefs.Invalid("pool %q: at most %d sandboxes per pool", s, MaxPoolSize)
	}
	return p, nil
}

func (p PoolSpec) String() string {
	if p.Snapshot != "" {
		return "snapshot:" + p.Snapshot + "=" + strconv.Itoa(p.Size)
	}
	if p.VCPUs == 0 && p.MemoryMB == 0 {
		return p.Template + "=" + strconv.Itoa(p.Size)
	}
	return fmt.Sprintf("%s=%d:%d:%d", p.Template, p.Size, p.VCPUs, p.MemoryMB)
}

// Timings of the fill loop.
const (
	// poolCheckInterval is how often the fill loop looks at the pools
	// without being kicked.
	poolCheckInterval = 5 * time.Second
	// poolRefillDelay is how long the creates must have been quiet
	// before a refill starts a sandbox: a burst of creates takes the pool
	// first, the refill's starts (a runsc boot each) come after.
	poolRefillDelay = 300 * time.Millisecond
	// poolRetryMax bounds the wait after failed fills of a pool.
	poolRetryMax = time.Minute
)

// pools is the agent's warm-pool state.
type pools struct {
	specs  []PoolSpec // resolved: sizes filled in
	budget uint64     // bytes of memory limits all pooled sandboxes may hold; 0 is no cap
	kick   chan struct{}

	// mu guards templates and snapshots.
	mu sync.Mutex
	// templates are the pooled templates the fill loop has ensured, once
	// each: a template's version changes only with the envd of a new
	// agent, so neither a pass nor a claim reads the template store.
	templates map[string]pooledTemplate
	// snapshots are the sizes of the pools of snapshots, by snapshot ID
	// (pool_snapshot.go).
	snapshots map[string]int
}

// pooledTemplate is a template of a pool as the fill loop ensured it: its
// rootfs (a claim takes only sandboxes made from it) and its size, which
// resolves a layer's size (rootfs.Size).
type pooledTemplate struct {
	path string
	size int64
}

// template returns pooled template name, if the fill loop has ensured it.
func (p *pools) template(name string) (pooledTemplate, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.templates[name]
	return t, ok
}

func newPools(cfg Config) *pools {
	p := &pools{kick: make(chan struct{}, 1), templates: map[string]pooledTemplate{}, snapshots: map[string]int{}}
	for _, s := range cfg.Pools {
		if s.Size == 0 {
			continue
		}
		if s.VCPUs == 0 {
			s.VCPUs = cfg.DefaultVCPUs
		}
		if s.MemoryMB == 0 {
			s.MemoryMB = cfg.DefaultMemoryMB
		}
		if s.DiskBytes == 0 {
			s.DiskBytes = cfg.DefaultRootfsSize
		}
		p.specs = append(p.specs, s)
	}
	switch {
	case cfg.PoolMemoryMB > 0:
		p.budget = uint64(cfg.PoolMemoryMB) << 20
	case cfg.PoolMemoryMB == 0:
		p.budget = DefaultPoolMemoryMB << 20
	}
	return p
}

// memoryWanted is the memory limits of the pools' sandboxes at their
// sizes, added up.
func (p *pools) memoryWanted() uint64 {
	var n uint64
	for _, s := range p.specs {
		n += uint64(s.Size) * uint64(s.MemoryMB) << 20
	}
	return n
}

// checkPools validates Config.Pools.
func checkPools(specs []PoolSpec) error {
	seen := map[string]bool{}
	for _, s := range specs {
		if !template.Known(s.Template) {
			return errdefs.Invalid("pool of unknown template %q", s.Template)
		}
		if s.Size < 0 || s.Size > MaxPoolSize {
			return errdefs.Invalid("pool %s: size must be 0 to %d", s, MaxPoolSize)
		}
		if s.VCPUs < 0 || s.MemoryMB < 0 || s.DiskBytes < 0 {
			return errdefs.Invalid("pool %s: sizes must not be negative", s)
		}
		k := fmt.Sprintf("%s/%d/%d/%d", s.Template, s.VCPUs, s.MemoryMB, s.DiskBytes)
		if seen[k] {
			return errdefs.Invalid("pool %s is given twice", s)
		}
		seen[k] = true
	}
	return nil
}

// poolKey is what a pooled sandbox and a create must share for the one to
// serve the other: template, vCPUs, memory and the writable layer's size
// (as rootfs.Size resolves it).
type poolKey struct {
	template  string
	vcpus     uint32
	memoryMB  uint32
	diskBytes int64
	// snapshot is the snapshot a pooled sandbox was restored from; empty
	// for one started from its template.
	snapshot string
}

func keyOf(cfg *agentpb.SandboxConfig) poolKey {
	return poolKey{cfg.Template, cfg.Vcpus, cfg.MemoryMb, cfg.DiskBytes, cfg.SnapshotId}
}

// specKey is s's key for its template t.
func specKey(s PoolSpec, t pooledTemplate) poolKey {
	return poolKey{s.Template, uint32(s.VCPUs), uint32(s.MemoryMB), rootfs.Size(s.DiskBytes, t.size), ""}
}

// poolTemplate returns pool template name, ensuring it (a build the first
// time) unless the fill loop did already.
func (a *Agent) poolTemplate(ctx context.Context, name string) (pooledTemplate, error) {
	if t, ok := a.pools.template(name); ok {
		return t, nil
	}
	path, err := a.templates.Ensure(ctx, name)
	if err != nil {
		return pooledTemplate{}, err
	}
	info, err := a.templates.Get(name)
	if err != nil {
		return pooledTemplate{}, err
	}
	t := pooledTemplate{path: path, size: info.SizeBytes}
	a.pools.mu.Lock()
	a.pools.templates[name] = t
	a.pools.mu.Unlock()
	return t, nil
}

// poolOptions are the egress options pooled sandboxes are made with: the
// default of a create. A claim with others rewrites them (SetEgress).
var poolOptions = network.Options{Internet: true}

// newPoolID returns a runtime name for a pooled sandbox: capsule-ID
// shaped, starting with "0", which capsulespec.NewID never makes.
func newPoolID() string { return "0" + capsulespec.NewID()[1:] }

// claim serves cfg from a warm pool when one holds a ready sandbox for it.
// ok is false when the create is to be made cold: no pool for it, none
// ready, or a claim that failed (its sandbox is removed; the cold path
// then serves the create). With ok true, the result is the create's.
func (a *Agent) claim(ctx context.Context, cfg *agentpb.SandboxConfig, opts network.Options) (_ *agentpb.Sandbox, ok bool, _ error) {
	if len(a.pools.specs) == 0 {
		return nil, false, nil
	}
	t, ok := a.pools.template(cfg.Template)
	if !ok {
		return nil, false, nil // no pool of it, or not ensured yet
	}
	key := keyOf(cfg)
	key.diskBytes = rootfs.Size(cfg.DiskBytes, t.size)
	return a.claimKey(ctx, cfg, key, t.path, opts)
}

// claimKey is claim of a pooled sandbox of key made from the template
// version at path.
func (a *Agent) claimKey(ctx context.Context, cfg *agentpb.SandboxConfig, key poolKey, path string, opts network.Options) (_ *agentpb.Sandbox, ok bool, _ error) {
	for range 2 { // a pooled sandbox found broken is removed: try one more
		sb, p, err := a.takePooled(cfg, key, path)
		if err != nil {
			return nil, true, err
		}
		if sb == nil {
			a.prom.claims.WithLabelValues("miss").Inc()
			return nil, false, nil
		}
		out, err := a.finishClaim(ctx, sb, p, opts)
		if err == nil {
			a.prom.claims.WithLabelValues("hit").Inc()
			a.kickPools()
			return out, true, nil
		}
		a.prom.claims.WithLabelValues("failed").Inc()
		if ctx.Err() != nil || a.lookup(cfg.Id) != nil {
			// Cancelled, or its cleanup failed and holds the ID: the
			// create fails.
			return nil, true, err
		}
		sb.log.Warn("a pooled sandbox could not be claimed; it is removed", "err", err)
	}
	return nil, false, nil
}

// takePooled moves a ready pooled sandbox of key (made from the template
// at path) to a new record for cfg, registered under cfg.Id with its op
// held, in one hold of a.mu; nil if the pools hold none. The pooled
// record p is gone from then on.
func (a *Agent) takePooled(cfg *agentpb.SandboxConfig, key poolKey, path string) (_, p *sandbox, _ error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.sandboxes[cfg.Id]; ok {
		return nil, nil, errdefs.AlreadyExists("sandbox %s exists", cfg.Id)
	}
	for _, c := range a.sandboxes {
		if c.pooled && c.ready && c.status == statusPooled && !c.gone && c.tplPath == path && keyOf(c.cfg) == key {
			p = c
			break
		}
	}
	if p == nil {
		return nil, nil, nil
	}
	delete(a.sandboxes, p.rid)
	p.gone = true
	cfg.DiskBytes = p.cfg.DiskBytes
	sb := &sandbox{
		id:          cfg.Id,
		rid:         p.rid,
		dir:         p.dir,
		log:         a.log.With("sandbox", cfg.Id),
		cfg:         cfg,
		tplPath:     p.tplPath,
		envdVersion: p.envdVersion,
		net:         p.net,
		layer:       p.layer,
		status:      statusCreating,
	}
	sb.op.Lock() // released by finishClaim
	a.sandboxes[sb.id] = sb
	return sb, p, nil
}

// The steps of a claim, in order; failAt hooks run after each.
const (
	stepClaimState   = "claim-state"   // the new record's state file is written
	stepClaimEgress  = "claim-egress"  // the network has the create's egress rules
	stepClaimInit    = "claim-init"    // envd has the create's token, env vars and defaults
	stepClaimRunning = "claim-running" // recorded as running
)

var claimSteps = []string{stepClaimState, stepClaimEgress, stepClaimInit, stepClaimRunning}

// finishClaim makes sb, which takePooled made of pooled sandbox p, the
// create's sandbox: the state file, the egress rules, envd's /init, then
// running. On error it removes all of sb (the runtime, layer, network and
// directory p had). It releases sb.op.
func (a *Agent) finishClaim(ctx context.Context, sb, p *sandbox, opts network.Options) (_ *agentpb.Sandbox, err error) {
	defer sb.op.Unlock()
	// Whatever made p may still hold its op, finishing its state file.
	p.op.Lock()
	p.op.Unlock() //nolint:staticcheck // an empty critical section: waiting is the point
	start := time.Now()
	defer func() {
		if err == nil {
			return
		}
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
		defer cancel()
		if terr := a.teardown(bg, sb); terr != nil {
			// Registered as stopping, as a failed destroy leaves a
			// sandbox: a destroy or a restart finishes the job.
			sb.log.Error("cleanup after a failed claim left something behind", "err", terr)
			a.setStatus(sb, statusStopping)
			return
		}
		a.forget(sb)
	}()
	step := func(name string) error {
		if a.cfg.failAt == nil {
			return nil
		}
		if err := a.cfg.failAt(name); err != nil {
			return fmt.Errorf("create sandbox %s: %s: %w", sb.id, name, err)
		}
		return nil
	}
	if err := a.writeState(sb); err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
	}
	if err := step(stepClaimState); err != nil {
		return nil, err
	}
	if !isPoolOptions(opts) {
		if err := a.net.SetEgress(ctx, sb.net, opts); err != nil {
			return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
		}
	}
	if err := step(stepClaimEgress); err != nil {
		return nil, err
	}
	ictx, cancel := context.WithTimeout(ctx, a.cfg.RestoreInitTimeout)
	err = a.envd.forkInit(ictx, sb.net.Addr(), p.cfg.AccessToken, sb.cfg, a.cfg.RestoreInitTimeout)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("create sandbox %s: pooled sandbox %s: %w", sb.id, p.rid, err)
	}
	if err := step(stepClaimInit); err != nil {
		return nil, err
	}
	sb.startedAt = time.Now()
	sb.proxy = newSandboxProxy(a, sb)
	a.mu.Lock()
	sb.status = statusRunning
	sb.endAt = sb.startedAt.Add(time.Duration(sb.cfg.TimeoutSeconds) * time.Second)
	a.mu.Unlock()
	if err := a.writeState(sb); err != nil {
		a.setStatus(sb, statusCreating)
		return nil, fmt.Errorf("create sandbox %s: %w", sb.id, err)
	}
	if err := step(stepClaimRunning); err != nil {
		a.setStatus(sb, statusCreating)
		return nil, err
	}
	a.emit(sb.id, EventCreated)
	a.emit(sb.id, EventRunning)
	sb.log.Info("sandbox running", "template", sb.cfg.Template, "took", time.Since(start), "pooled", p.rid, "address", sb.net.Addr())
	go a.rebaseCPU(context.WithoutCancel(ctx), sb)
	return a.toProto(sb), nil
}

// rebaseCPU makes a claimed sandbox's CPU use count from about now: the
// runtime's counter includes its time in the pool. It reads the counter
// off the claim's path (a reading is one runsc process, tens of
// milliseconds) and keeps it unless a metrics reading came first.
func (a *Agent) rebaseCPU(ctx context.Context, sb *sandbox) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := a.driver.Stats(ctx, sb.rid)
	if err != nil {
		return
	}
	a.mu.Lock()
	if sb.lastStats.At.IsZero() {
		sb.lastStats = st
	}
	a.mu.Unlock()
}

// isPoolOptions reports whether opts are the egress rules pooled
// sandboxes have already (poolOptions: internet on, no lists).
func isPoolOptions(opts network.Options) bool {
	return opts.Internet == poolOptions.Internet && len(opts.AllowOut) == 0 && len(opts.DenyOut) == 0
}

// pooledReady ends start for a pooled sandbox: recorded as pooled, then
// ready to claim. The caller holds sb.op.
func (a *Agent) pooledReady(sb *sandbox, start time.Time) (*agentpb.Sandbox, error) {
	a.setStatus(sb, statusPooled)
	if err := a.writeState(sb); err != nil {
		a.setStatus(sb, statusCreating)
		return nil, fmt.Errorf("pooled sandbox %s: %w", sb.id, err)
	}
	a.mu.Lock()
	sb.ready = true
	a.mu.Unlock()
	sb.log.Info("pooled sandbox ready", "took", time.Since(start))
	return nil, nil
}

// admitPooled is admit for a pooled sandbox: it must also fit in the
// pools' memory budget. Call it with a.mu held.
func (a *Agent) admitPooled(c hostCapacity, cfg *agentpb.SandboxConfig) error {
	var held uint64
	for _, sb := range a.sandboxes {
		if sb.pooled {
			held += uint64(sb.cfg.MemoryMb) << 20
		}
	}
	if mem := uint64(cfg.MemoryMb) << 20; a.pools.budget > 0 && held+mem > a.pools.budget {
		return refuse(reasonPoolBudget, fmt.Errorf("the warm pools hold %d MiB of memory limits of their %d MiB budget, no room for %d MiB more: %w",
			held>>20, a.pools.budget>>20, mem>>20, errdefs.ErrExhausted))
	}
	return a.admit(c, cfg)
}

// kickPools asks the fill loop to look at the pools soon.
func (a *Agent) kickPools() {
	if a.pools == nil {
		return // an Agent made without New, in a unit test
	}
	select {
	case a.pools.kick <- struct{}{}:
	default:
	}
}

// fillPools keeps the pools filled until ctx is done (see the comment at
// the top). Pooled sandboxes stay when the agent stops, to be adopted by
// the next one.
func (a *Agent) fillPools(ctx context.Context) {
	// By pool (PoolSpec.String without the size): when to try a pool
	// whose fills failed again, and how many failed in a row.
	retry, fails := map[string]time.Time{}, map[string]int{}
	t := time.NewTicker(poolCheckInterval)
	defer t.Stop()
	for {
		a.refillPools(ctx, retry, fails)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.pools.kick:
			if !a.waitQuiet(ctx) {
				return
			}
		}
	}
}

// waitQuiet waits until no claim has kicked the pools for
// poolRefillDelay; false if ctx ended first.
func (a *Agent) waitQuiet(ctx context.Context) bool {
	t := time.NewTimer(poolRefillDelay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-a.pools.kick:
			t.Reset(poolRefillDelay)
		case <-t.C:
			return true
		}
	}
}

// refillPools does one pass of the fill loop: it removes the pooled
// sandboxes no pool wants, then starts what each pool lacks, one at a
// time. A pool whose fill fails waits (doubling up to poolRetryMax) before
// it is tried again; a fill refused for room just waits for the next pass.
func (a *Agent) refillPools(ctx context.Context, retry map[string]time.Time, fails map[string]int) {
	specs := append(slices.Clone(a.pools.specs), a.pools.snapshotSpecs()...)
	keys := map[poolKey]int{} // wanted size by key
	specKeys := make([]poolKey, len(specs))
	paths := map[poolKey]string{} // the template version of each key
	for i, s := range specs {
		if ctx.Err() != nil {
			return
		}
		name := poolName(s)
		if s.Snapshot != "" {
			k, path, err := a.snapshotPoolKey(s.Snapshot)
			if err != nil {
				if !time.Now().Before(retry[name]) {
					a.log.Error("warm pool: snapshot", "pool", s, "err", err)
					retry[name] = poolBackoff(fails, name)
				}
				continue
			}
			specKeys[i], paths[k] = k, path
			keys[k] += s.Size
			continue
		}
		t, ok := a.pools.template(s.Template)
		if !ok && !time.Now().Before(retry[name]) {
			var err error
			if t, err = a.poolTemplate(ctx, s.Template); err != nil {
				a.log.Error("warm pool: template", "pool", s, "err", err)
				retry[name] = poolBackoff(fails, name)
				continue
			}
			ok = true
		}
		if ok {
			specKeys[i] = specKey(s, t)
			paths[specKeys[i]] = t.path
			keys[specKeys[i]] += s.Size
		}
	}
	// Remove what no pool wants: a key no spec has, a template version
	// not the key's, more than a pool's size.
	a.mu.Lock()
	var surplus []*sandbox
	have := map[poolKey]int{}
	for _, sb := range a.sandboxes {
		if !sb.pooled || sb.gone {
			continue
		}
		k := keyOf(sb.cfg)
		switch {
		case sb.status != statusPooled && sb.status != statusCreating:
		case sb.status == statusPooled && sb.ready && (have[k] >= keys[k] || sb.tplPath != paths[k]):
			surplus = append(surplus, sb)
		default:
			have[k]++
		}
	}
	a.mu.Unlock()
	for _, sb := range surplus {
		if _, err := a.removePooled(ctx, sb); err != nil {
			sb.log.Error("warm pool: remove a pooled sandbox", "err", err)
		}
	}
	for i, s := range specs {
		k, name := specKeys[i], poolName(s)
		if paths[k] == "" {
			continue
		}
		for have[k] < keys[k] && ctx.Err() == nil && !time.Now().Before(retry[name]) {
			// Claims since the last start: let their burst pass first.
			select {
			case <-a.pools.kick:
				if !a.waitQuiet(ctx) {
					return
				}
			default:
			}
			err := a.fillOne(ctx, s)
			if err == nil {
				have[k]++
				delete(fails, name)
				continue
			}
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, errdefs.ErrExhausted) {
				// No room: not a failure of the pool. A destroy kicks
				// the loop; the next pass tries again.
				a.log.Debug("warm pool: no room for another pooled sandbox", "pool", s, "err", err)
				break
			}
			a.log.Error("warm pool: start a pooled sandbox", "pool", s, "err", err)
			retry[name] = poolBackoff(fails, name)
			break
		}
	}
}

// poolName names pool s apart from its size, for the fill loop's
// bookkeeping.
func poolName(s PoolSpec) string {
	s.Size = 0
	return s.String()
}

// poolBackoff counts a failure of pool name and returns when to try it
// again.
func poolBackoff(fails map[string]int, name string) time.Time {
	fails[name]++
	d := min(time.Second<<min(fails[name]-1, 6), poolRetryMax)
	return time.Now().Add(d)
}

// fillOne starts one pooled sandbox of s.
func (a *Agent) fillOne(ctx context.Context, s PoolSpec) error {
	if s.Snapshot != "" {
		return a.fillFromSnapshot(ctx, s.Snapshot)
	}
	cfg := &agentpb.SandboxConfig{
		Id:          newPoolID(),
		Template:    s.Template,
		Vcpus:       uint32(s.VCPUs),
		MemoryMb:    uint32(s.MemoryMB),
		DiskBytes:   s.DiskBytes,
		Internet:    poolOptions.Internet,
		AccessToken: rand.Text(),
	}
	cfg, opts, err := a.resolveConfig(cfg)
	if err != nil {
		return err
	}
	_, err = a.start(ctx, cfg, opts, true)
	return err
}

// removePooled removes pooled sandbox sb unless a claim took it first
// (removed is false then). It sends no event: no control plane knows it.
// A teardown that fails leaves sb registered as stopping, with its state
// file: a restarted agent finishes it.
func (a *Agent) removePooled(ctx context.Context, sb *sandbox) (removed bool, _ error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
	defer cancel()
	sb.op.Lock()
	defer sb.op.Unlock()
	a.mu.Lock()
	if sb.gone || sb.status != statusPooled {
		a.mu.Unlock()
		return false, nil
	}
	sb.status = statusStopping
	a.mu.Unlock()
	if err := a.teardown(ctx, sb); err != nil {
		return false, fmt.Errorf("remove pooled sandbox %s: %w", sb.rid, err)
	}
	a.forget(sb)
	sb.log.Info("pooled sandbox removed")
	return true, nil
}

// evictPooled removes one pooled sandbox to make room for a create or a
// resume; false if there was none.
func (a *Agent) evictPooled(ctx context.Context) bool {
	for {
		a.mu.Lock()
		var victim *sandbox
		for _, sb := range a.sandboxes {
			if sb.pooled && sb.ready && sb.status == statusPooled && !sb.gone {
				victim = sb
				break
			}
		}
		a.mu.Unlock()
		if victim == nil {
			return false
		}
		removed, err := a.removePooled(ctx, victim)
		if err != nil {
			victim.log.Error("warm pool: remove a pooled sandbox for room", "err", err)
			return false
		}
		if removed {
			victim.log.Info("pooled sandbox gave its room to a create")
			a.kickPools()
			return true
		}
		// A claim took it first: look for another.
	}
}

// DrainPools removes every pooled sandbox. Call it after Run has returned
// when the agent stops on purpose: pooled sandboxes are a cache of
// starts, not worth keeping across a shutdown. An agent that dies without
// it leaves them to the next one, which adopts them.
func (a *Agent) DrainPools(ctx context.Context) {
	a.mu.Lock()
	var all []*sandbox
	for _, sb := range a.sandboxes {
		if sb.pooled && sb.status == statusPooled && !sb.gone {
			all = append(all, sb)
		}
	}
	a.mu.Unlock()
	for _, sb := range all {
		if _, err := a.removePooled(ctx, sb); err != nil {
			sb.log.Error("warm pool: remove a pooled sandbox at shutdown", "err", err)
		}
	}
}

// pooledTemplates lists, sorted, the templates of which a pooled sandbox
// is ready to claim.
func (a *Agent) pooledTemplates() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, sb := range a.sandboxes {
		if sb.pooled && sb.ready && sb.status == statusPooled && !sb.gone && sb.cfg.SnapshotId == "" && !slices.Contains(out, sb.cfg.Template) {
			out = append(out, sb.cfg.Template)
		}
	}
	slices.Sort(out)
	return out
}
