package agent

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
)

// hostCapacity is what this machine can give to sandboxes, measured now.
type hostCapacity struct {
	memTotal, memReserve uint64 // bytes
	memAvail             uint64 // MemAvailable, for Ping
	diskAvail, diskTotal uint64 // bytes, of the data dir's file system
	diskReserve          uint64
	maxSandboxes         uint32 // from the host's PID capacity and Config.MaxSandboxes
	pidsLimit            int64  // of each sandbox
	// allocated is, per sandbox, the bytes its writable layer occupies on
	// disk already (sparse images grow as the tenant writes).
	allocated map[string]uint64
}

// measure reads the host's capacity. It does file system calls: call it
// without a.mu held.
func (a *Agent) measure() (hostCapacity, error) {
	c := hostCapacity{pidsLimit: a.cfg.PidsLimit, allocated: map[string]uint64{}}
	mem, err := readMeminfo()
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
	// The host's PIDs: every sandbox may use up to pidsLimit of them, and
	// the host keeps a quarter (at least 4096) for itself, so that even
	// every sandbox fork-bombing at once cannot starve the host.
	hostPIDs := min(readProcInt("/proc/sys/kernel/pid_max"), readProcInt("/proc/sys/kernel/threads-max"))
	if hostPIDs > 0 && c.pidsLimit > 0 {
		usable := hostPIDs - max(4096, hostPIDs/4)
		c.maxSandboxes = uint32(max(usable, 0) / c.pidsLimit)
	}
	if m := a.cfg.MaxSandboxes; m > 0 && (c.maxSandboxes == 0 || uint32(m) < c.maxSandboxes) {
		c.maxSandboxes = uint32(m)
	}

	a.mu.Lock()
	images := map[string]string{}
	for id, sb := range a.sandboxes {
		if sb.layer.Image != "" {
			images[id] = sb.layer.Image
		}
	}
	a.mu.Unlock()
	for id, img := range images {
		var st syscall.Stat_t
		if syscall.Stat(img, &st) == nil {
			c.allocated[id] = uint64(st.Blocks) * 512
		}
	}
	return c, nil
}

// admit decides whether cfg fits next to the sandboxes of a.sandboxes.
// Call it with a.mu held, with a measure taken just before; admitting and
// registering under one hold of a.mu means two creates cannot both take
// the last room. A refusal is errdefs.ErrExhausted with what is short.
func (a *Agent) admit(c hostCapacity, cfg *agentpb.SandboxConfig) error {
	var memUsed, diskPromised uint64
	n := 0
	for id, sb := range a.sandboxes {
		n++
		memUsed += uint64(sb.cfg.MemoryMb) << 20
		// What the layer may still grow by: its size less what it holds.
		size := uint64(max(sb.cfg.DiskBytes, 0))
		diskPromised += size - min(c.allocated[id], size)
	}
	if c.maxSandboxes > 0 && uint32(n) >= c.maxSandboxes {
		return fmt.Errorf("this host runs its maximum of %d sandboxes (each may use %d of the host's PIDs): %w", c.maxSandboxes, c.pidsLimit, errdefs.ErrExhausted)
	}
	mem := uint64(cfg.MemoryMb) << 20
	if limit := c.memTotal - min(c.memReserve, c.memTotal); memUsed+mem > limit {
		return fmt.Errorf("this host has no memory for %d MiB more: %d of %d MiB are given to sandboxes (%d MiB kept for the host): %w",
			mem>>20, memUsed>>20, limit>>20, c.memReserve>>20, errdefs.ErrExhausted)
	}
	disk := uint64(max(cfg.DiskBytes, 0))
	if free := c.diskAvail - min(diskPromised, c.diskAvail); free < disk || free-disk < c.diskReserve {
		return fmt.Errorf("this host has no disk for a %d MiB writable layer: %d MiB free, %d MiB promised to the layers of running sandboxes, %d MiB kept in reserve: %w",
			disk>>20, c.diskAvail>>20, diskPromised>>20, c.diskReserve>>20, errdefs.ErrExhausted)
	}
	return nil
}

// readProcInt reads a number from a /proc file; 0 if it cannot.
func readProcInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}
