package agent

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
)

// hostCapacity is what this machine can give to sandboxes, measured now.
type hostCapacity struct {
	memTotal, memReserve uint64 // bytes
	memAvail             uint64 // MemAvailable
	memCommitLimit       uint64 // what the sandboxes' memory limits may add up to
	diskAvail, diskTotal uint64 // bytes, of the data dir's file system
	diskReserve          uint64
	diskOvercommit       float64 // Config.DiskOvercommit
	maxSandboxes         uint32  // Config.MaxSandboxes; 0: none
	// allocated is, per sandbox, the bytes its writable layer occupies on
	// disk already (sparse images grow as the tenant writes).
	allocated map[string]uint64
}

// measure reads the host's capacity; with layers, also what each
// sandbox's writable layer holds (one stat per sandbox, which only
// admission needs). It does file system calls: call it without a.mu held.
func (a *Agent) measure(layers bool) (hostCapacity, error) {
	c := hostCapacity{maxSandboxes: uint32(max(a.cfg.MaxSandboxes, 0)), diskOvercommit: a.cfg.DiskOvercommit, allocated: map[string]uint64{}}
	readMem := readMeminfo
	if a.cfg.meminfo != nil {
		readMem = a.cfg.meminfo
	}
	mem, err := readMem()
	if err != nil {
		return c, fmt.Errorf("host memory: %w", err)
	}
	c.memTotal, c.memAvail = mem["MemTotal"], mem["MemAvailable"]
	switch {
	case a.cfg.MemoryReserveBytes > 0:
		c.memReserve = uint64(a.cfg.MemoryReserveBytes)
	case a.cfg.MemoryReserveBytes == 0:
		c.memReserve = max(1<<30, c.memTotal/10)
	}
	c.memCommitLimit = uint64(float64(c.memTotal-min(c.memReserve, c.memTotal)) * a.cfg.MemoryOvercommit)
	var fs unix.Statfs_t
	if err := unix.Statfs(a.cfg.DataDir, &fs); err != nil {
		return c, fmt.Errorf("data dir: %w", err)
	}
	c.diskTotal = fs.Blocks * uint64(fs.Bsize)
	c.diskAvail = fs.Bavail * uint64(fs.Bsize)
	switch {
	case a.cfg.DiskReserveBytes > 0:
		c.diskReserve = uint64(a.cfg.DiskReserveBytes)
	case a.cfg.DiskReserveBytes == 0:
		c.diskReserve = max(2<<30, c.diskTotal/20)
	}
	if !layers {
		return c, nil
	}
	// What each layer holds, from the last look at it: the metrics
	// sampler looks again at every running sandbox's, so admission stats
	// only the layers nobody has looked at yet (the newest sandboxes), not
	// all of them on every create. A layer only grows while it runs, so an
	// older reading counts less of it as held and more as still to grow:
	// it errs towards refusing, by what was written since.
	a.mu.Lock()
	images := map[string]string{}
	for id, sb := range a.sandboxes {
		if sb.layer.Image == "" {
			continue
		}
		if sb.allocatedOf == sb.layer.Image {
			c.allocated[id] = sb.allocated
		} else {
			images[id] = sb.layer.Image
		}
	}
	a.mu.Unlock()
	for id, img := range images {
		if n, ok := a.statLayer(img); ok {
			c.allocated[id] = n
			a.mu.Lock()
			if sb := a.sandboxes[id]; sb != nil && sb.layer.Image == img {
				sb.allocated, sb.allocatedOf = n, img
			}
			a.mu.Unlock()
		}
	}
	return c, nil
}

// statLayer returns the bytes the image of a writable layer occupies on
// disk (sparse images grow as the tenant writes).
func (a *Agent) statLayer(img string) (uint64, bool) {
	a.layerStats.Add(1)
	var st syscall.Stat_t
	if syscall.Stat(img, &st) != nil {
		return 0, false
	}
	return uint64(st.Blocks) * 512, true
}

// noteLayer looks at what sb's writable layer holds now, for admission.
// Call it without a.mu held.
func (a *Agent) noteLayer(sb *sandbox) {
	a.mu.Lock()
	img := sb.layer.Image
	a.mu.Unlock()
	if img == "" {
		return
	}
	n, ok := a.statLayer(img)
	if !ok {
		return
	}
	a.mu.Lock()
	if sb.layer.Image == img {
		sb.allocated, sb.allocatedOf = n, img
	}
	a.mu.Unlock()
}

// admit decides whether cfg fits next to the sandboxes of a.sandboxes.
// Call it with a.mu held, with a measure taken just before; admitting and
// registering under one hold of a.mu means two creates cannot both take
// the last room. A refusal is errdefs.ErrExhausted with what is short.
func (a *Agent) admit(c hostCapacity, cfg *agentpb.SandboxConfig) error {
	var diskPromised uint64
	n := 0
	for id, sb := range a.sandboxes {
		n++ // a paused sandbox keeps its slot and its layer
		// What the layer may still grow by: its size less what it holds.
		size := uint64(max(sb.cfg.DiskBytes, 0))
		diskPromised += size - min(c.allocated[id], size)
	}
	if c.maxSandboxes > 0 && uint32(n) >= c.maxSandboxes {
		return refuse(reasonMaxSandboxes, fmt.Errorf("this host runs its maximum of %d sandboxes: %w", c.maxSandboxes, errdefs.ErrExhausted))
	}
	if err := a.admitMemory(c, nil, cfg.MemoryMb); err != nil {
		return err
	}
	if c.diskAvail < c.diskReserve {
		return refuse(reasonDiskLow, fmt.Errorf("this host is short of disk: %d MiB free, %d MiB kept in reserve: %w",
			c.diskAvail>>20, c.diskReserve>>20, errdefs.ErrExhausted))
	}
	// Writable layers are sparse: what they may still grow by together is
	// bounded by the free space above the reserve, times the overcommit.
	disk := uint64(max(cfg.DiskBytes, 0))
	if budget := uint64(float64(c.diskAvail-c.diskReserve) * c.diskOvercommit); diskPromised+disk > budget {
		return refuse(reasonDiskCommit, fmt.Errorf("this host has no disk for a %d MiB writable layer: the layers of running sandboxes may grow by %d MiB, of the %d MiB it commits (%d MiB free, %d MiB kept in reserve): %w",
			disk>>20, diskPromised>>20, budget>>20, c.diskAvail>>20, c.diskReserve>>20, errdefs.ErrExhausted))
	}
	return nil
}

// admitMemory decides whether memoryMB more fits next to the sandboxes
// that hold memory (not failed ones or ones paused to disk: their runtime
// is gone; one paused in memory holds it),
// leaving out self (a sandbox being resumed). Call it with a.mu held.
func (a *Agent) admitMemory(c hostCapacity, self *sandbox, memoryMB uint32) error {
	var memUsed uint64
	for _, sb := range a.sandboxes {
		if sb != self && (sb.status != statusPaused || sb.pauseTier == tierMemory) && sb.status != statusError {
			memUsed += uint64(sb.cfg.MemoryMb) << 20
		}
	}
	if c.memAvail < c.memReserve {
		return refuse(reasonMemoryLow, fmt.Errorf("this host is short of memory: %d MiB available, %d MiB kept for the host: %w",
			c.memAvail>>20, c.memReserve>>20, errdefs.ErrExhausted))
	}
	mem := uint64(memoryMB) << 20
	if memUsed+mem > c.memCommitLimit {
		return refuse(reasonMemoryCommit, fmt.Errorf("this host has no memory for %d MiB more: the sandboxes' limits add up to %d of the %d MiB it commits: %w",
			mem>>20, memUsed>>20, c.memCommitLimit>>20, errdefs.ErrExhausted))
	}
	return nil
}
