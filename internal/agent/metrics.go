package agent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	"nestbox.dev/internal/proto/agentpb"
)

// metrics samples a sandbox's resource use. CPU % is the CPU time used
// since the previous sample (or since the start, for the first one) over
// the wall time between them and the sandbox's vCPUs; 100 means every vCPU
// was busy. Disk use is that of the writable layer.
func (a *Agent) metrics(ctx context.Context, id string) (*agentpb.SandboxMetrics, error) {
	sb, err := a.running(id)
	if err != nil {
		return nil, err
	}
	st, err := a.driver.Stats(ctx, sb.rid)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	prev := sb.lastStats
	sb.lastStats = st
	a.mu.Unlock()
	if prev.At.IsZero() {
		prev.At, prev.CPUNanos = sb.startedAt, 0
	}
	vcpus := max(sb.cfg.Vcpus, 1)
	var pct float64
	if wall := st.At.Sub(prev.At); wall > 0 && st.CPUNanos >= prev.CPUNanos {
		pct = float64(st.CPUNanos-prev.CPUNanos) / float64(wall.Nanoseconds()) / float64(vcpus) * 100
		pct = min(pct, 100)
	}
	m := &agentpb.SandboxMetrics{
		At:               timestamppb.New(st.At),
		CpuUsedPct:       pct,
		CpuCount:         vcpus,
		MemoryUsedBytes:  st.MemoryBytes,
		MemoryTotalBytes: uint64(sb.cfg.MemoryMb) << 20,
		RxBytes:          st.RxBytes,
		TxBytes:          st.TxBytes,
	}
	if sb.layer.UpperMount != "" {
		var fs unix.Statfs_t
		if err := unix.Statfs(sb.layer.UpperMount, &fs); err != nil {
			return nil, fmt.Errorf("metrics of sandbox %s: disk: %w", id, err)
		}
		// The total is the layer's size, as the memory total is the limit:
		// the size the capsule records (disk_mb), so that its answers agree.
		// The file system in the layer holds a little less (its metadata).
		m.DiskTotalBytes = uint64(max(sb.cfg.DiskBytes, 0))
		m.DiskUsedBytes = (fs.Blocks - fs.Bfree) * uint64(fs.Bsize)
	}
	return m, nil
}

// ping reports the host's capacity and what the sandboxes use of it.
func (a *Agent) ping(ctx context.Context) (*agentpb.PingResponse, error) {
	resp := &agentpb.PingResponse{
		Version: version(),
		Driver:  a.driver.Name(),
		Cpus:    uint32(runtime.NumCPU()),
	}
	c, err := a.measure(false)
	if err != nil {
		return nil, fmt.Errorf("ping: %w", err)
	}
	resp.MemoryTotalBytes = c.memTotal
	resp.MemoryAvailableBytes = c.memAvail
	resp.MemoryReservedBytes = c.memReserve
	resp.MemoryCommitLimitBytes = c.memCommitLimit
	resp.DiskTotalBytes = c.diskTotal
	resp.DiskAvailableBytes = c.diskAvail
	resp.DiskReservedBytes = c.diskReserve
	resp.MaxSandboxes = c.maxSandboxes
	a.mu.Lock()
	for _, sb := range a.sandboxes {
		// Creating and stopping sandboxes hold their resources too.
		resp.Sandboxes++
		resp.VcpusAllocated += sb.cfg.Vcpus
		resp.MemoryAllocatedBytes += uint64(sb.cfg.MemoryMb) << 20
		resp.DiskAllocatedBytes += uint64(max(sb.cfg.DiskBytes, 0))
	}
	a.mu.Unlock()
	// The snapshots hold what they hold: they do not grow.
	resp.DiskAllocatedBytes += a.snapshotBytes()
	return resp, nil
}

// readMeminfo returns /proc/meminfo's values in bytes.
func readMeminfo() (map[string]uint64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(string(f[1]), 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 2 && string(f[2]) == "kB" {
			v <<= 10
		}
		out[string(bytes.TrimSuffix(f[0], []byte(":")))] = v
	}
	return out, sc.Err()
}

// version is the agent's build version ("dev" for a development build).
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
