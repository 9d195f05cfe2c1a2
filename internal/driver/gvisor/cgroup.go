package gvisor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupRoot is where the host's cgroup file systems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// hostPidsCap is the default pids limit of the parent cgroup of all
// sandboxes on a host that can run host tasks (the smaller of pid_max and
// threads-max): three quarters of them, and at least 4096 left to the
// host; 0 (no cap) when that leaves nothing or host is unknown.
func hostPidsCap(host int64) int64 {
	return max(host-max(4096, host/4), 0)
}

// hostPIDs is what this host can run: min(pid_max, threads-max), or 0.
func hostPIDs() int64 {
	return min(readProcInt("/proc/sys/kernel/pid_max"), readProcInt("/proc/sys/kernel/threads-max"))
}

// limitParentPids sets pids.max of the cgroup parent, creating it. The
// kernel counts every task of the sandboxes below it against that one
// limit, so sandboxes fork-bombing at once stop there, well before the
// host's own processes (the agent among them) cannot fork. cgroup v1
// (a pids hierarchy) and v2 (the unified hierarchy) are both handled.
//
// The parent cgroup is long-lived, shared by every sandbox of the agent,
// and left in place when the agent stops (runsc creates and removes only
// the sandboxes' own cgroups below it).
func limitParentPids(parent string, limit int64) error {
	dir := filepath.Join(cgroupRoot, "pids", parent)
	if _, err := os.Stat(filepath.Join(cgroupRoot, "pids")); err != nil {
		// cgroup v2: enable the pids controller for the root's children.
		if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err != nil {
			return fmt.Errorf("no pids cgroup controller under %s", cgroupRoot)
		}
		dir = filepath.Join(cgroupRoot, parent)
		ctl := filepath.Join(cgroupRoot, "cgroup.subtree_control")
		if b, _ := os.ReadFile(ctl); !strings.Contains(string(b), "pids") {
			if err := os.WriteFile(ctl, []byte("+pids"), 0o644); err != nil {
				return fmt.Errorf("enable the pids controller: %w", err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("make cgroup %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		return fmt.Errorf("set %s/pids.max: %w", dir, err)
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

// setMemoryLimit sets the host memory limit of the cgroup at path (below
// the cgroup root, as in the OCI spec): memory.limit_in_bytes on cgroup
// v1, memory.max on v2.
func setMemoryLimit(path string, limit int64) error {
	v := []byte(strconv.FormatInt(limit, 10))
	v1 := filepath.Join(cgroupRoot, "memory", path, "memory.limit_in_bytes")
	if _, err := os.Stat(v1); err == nil {
		return os.WriteFile(v1, v, 0o644)
	}
	v2 := filepath.Join(cgroupRoot, path, "memory.max")
	if _, err := os.Stat(v2); err != nil {
		return fmt.Errorf("no memory cgroup for %s: %w", path, err)
	}
	return os.WriteFile(v2, v, 0o644)
}

// removeCgroups removes the cgroup directories at path (below the cgroup
// root, as in the OCI spec): in every v1 hierarchy, or the unified v2 one.
// runsc removes a sandbox's cgroups when it deletes the sandbox, but not
// those of a start that was killed before runsc recorded the sandbox (a
// create cancelled with its caller): then delete finds nothing, and the
// sandbox and gofer processes that start had already forked would run on
// in them for good. The directories are the sandbox's alone, so whatever
// still runs in them is killed first.
//
// A killed process lingers in its cgroup a moment (until its parent reaps
// it): a busy directory is tried again, killing again, for up to a second.
func removeCgroups(path string) error {
	dirs, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", path))
	dirs = append(dirs, filepath.Join(cgroupRoot, path))
	for try := 0; ; try++ {
		var busy []string
		for _, dir := range dirs {
			err := unix.Rmdir(dir)
			switch {
			case err == nil, errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
			case errors.Is(err, unix.EBUSY):
				killCgroup(dir)
				busy = append(busy, dir)
			default:
				return fmt.Errorf("remove cgroup %s: %w", dir, err)
			}
		}
		if len(busy) == 0 {
			return nil
		}
		if try == 50 {
			return fmt.Errorf("cgroups still hold processes: %s", strings.Join(busy, ", "))
		}
		dirs = busy
		time.Sleep(20 * time.Millisecond)
	}
}

// killCgroup sends SIGKILL to every process in the cgroup directory dir:
// all at once through cgroup.kill where the kernel has it (v2), else to
// each process cgroup.procs lists.
func killCgroup(dir string) {
	if os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0o644) == nil {
		return
	}
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(procs)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}
