package envd

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// metrics is the body of GET /metrics, in E2B's field names. Memory and
// disk are bytes; *_mib are MiB.
type metrics struct {
	Timestamp   int64   `json:"ts"`
	CPUCount    int     `json:"cpu_count"`
	CPUUsedPct  float64 `json:"cpu_used_pct"`
	MemTotal    uint64  `json:"mem_total"`
	MemUsed     uint64  `json:"mem_used"`
	MemCache    uint64  `json:"mem_cache"`
	MemTotalMiB uint64  `json:"mem_total_mib"`
	MemUsedMiB  uint64  `json:"mem_used_mib"`
	DiskUsed    uint64  `json:"disk_used"`
	DiskTotal   uint64  `json:"disk_total"`
}

// cpuTimes is the aggregate line of /proc/stat, in clock ticks.
type cpuTimes struct{ busy, total uint64 }

// metricsSampler computes CPU use as the change since the previous sample,
// so each caller sees the load of the interval since the last one.
type metricsSampler struct {
	procRoot string
	diskPath string

	// mu guards last.
	mu   sync.Mutex
	last *cpuTimes
}

func newMetricsSampler() *metricsSampler {
	return &metricsSampler{procRoot: "/proc", diskPath: "/"}
}

// reset drops the CPU baseline: after a snapshot restore the interval since
// the last sample spans the time the sandbox was frozen.
func (m *metricsSampler) reset() {
	m.mu.Lock()
	m.last = nil
	m.mu.Unlock()
}

func (m *metricsSampler) sample(ctx context.Context) (metrics, error) {
	out := metrics{Timestamp: time.Now().Unix(), CPUCount: runtime.NumCPU()}
	pct, err := m.cpuPercent(ctx)
	if err != nil {
		return out, err
	}
	out.CPUUsedPct = pct
	mem, err := readMeminfo(m.procRoot + "/meminfo")
	if err != nil {
		return out, err
	}
	total, avail := mem["MemTotal"], mem["MemAvailable"]
	if avail == 0 {
		avail = mem["MemFree"] + mem["Cached"] + mem["Buffers"]
	}
	out.MemTotal = total
	if total > avail {
		out.MemUsed = total - avail
	}
	out.MemCache = mem["Cached"] + mem["Buffers"]
	out.MemTotalMiB = out.MemTotal >> 20
	out.MemUsedMiB = out.MemUsed >> 20
	var st unix.Statfs_t
	if err := unix.Statfs(m.diskPath, &st); err != nil {
		return out, fmt.Errorf("statfs %s: %w", m.diskPath, err)
	}
	out.DiskTotal = st.Blocks * uint64(st.Bsize)
	out.DiskUsed = (st.Blocks - st.Bfree) * uint64(st.Bsize)
	return out, nil
}

// cpuPercent returns the busy share of all CPUs since the last call, in
// percent. The first call measures a 100 ms window.
func (m *metricsSampler) cpuPercent(ctx context.Context) (float64, error) {
	m.mu.Lock()
	prev := m.last
	m.mu.Unlock()
	if prev == nil {
		first, err := readCPUTimes(m.procRoot + "/stat")
		if err != nil {
			return 0, err
		}
		prev = &first
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	now, err := readCPUTimes(m.procRoot + "/stat")
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	m.last = &now
	m.mu.Unlock()
	if now.total <= prev.total || now.busy < prev.busy {
		return 0, nil
	}
	pct := 100 * float64(now.busy-prev.busy) / float64(now.total-prev.total)
	return float64(int(pct*100+0.5)) / 100, nil
}

func readCPUTimes(path string) (cpuTimes, error) {
	f, err := os.Open(path)
	if err != nil {
		return cpuTimes{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[0] != "cpu" {
			continue
		}
		var t cpuTimes
		for i, v := range fields[1:] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("parse %s: %w", path, err)
			}
			t.total += n
			// idle (3) and iowait (4) are not busy; guest times are
			// already counted in user and nice.
			if i != 3 && i != 4 && i < 8 {
				t.busy += n
			}
			if i >= 8 {
				t.total -= n
			}
		}
		return t, nil
	}
	return cpuTimes{}, fmt.Errorf("no cpu line in %s", path)
}

// readMeminfo returns /proc/meminfo in bytes.
func readMeminfo(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		out[key] = n
	}
	return out, nil
}
