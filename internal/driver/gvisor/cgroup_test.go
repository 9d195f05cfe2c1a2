package gvisor

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nestbox.dev/internal/testenv"
)

// TestParentPidsCap checks that a new driver sets the host-wide pids cap on
// its cgroup parent, and that the default leaves the host a quarter of its
// PIDs (at least 4096).
func TestParentPidsCap(t *testing.T) {
	testenv.RequireRoot(t)
	// The pids hierarchy of cgroup v1, or the unified one of v2, as
	// limitParentPids picks it.
	pids := filepath.Join(cgroupRoot, "pids")
	if _, err := os.Stat(pids); err != nil {
		pids = cgroupRoot
		if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err != nil {
			testenv.Missing(t, "a pids cgroup controller (v1 or v2)")
		}
	}
	runsc := filepath.Join(t.TempDir(), "runsc")
	if err := os.WriteFile(runsc, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	parent := "/nestbox-test-pidscap"
	t.Cleanup(func() { os.Remove(filepath.Join(pids, parent)) })
	for _, tc := range []struct {
		total int64
		want  int64
	}{
		{2345, 2345},
		{0, hostPidsCap(hostPIDs())},
	} {
		if _, err := New(Config{Runsc: runsc, Root: t.TempDir(), CgroupParent: parent, TotalPidsLimit: tc.total}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(pids, parent, "pids.max"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(b)); got != strconv.FormatInt(tc.want, 10) {
			t.Errorf("TotalPidsLimit %d: pids.max %s, want %d", tc.total, got, tc.want)
		}
	}
}

// TestHostPidsCap checks the default cap's arithmetic on fixed hosts.
func TestHostPidsCap(t *testing.T) {
	for _, tc := range []struct{ host, want int64 }{
		{0, 0},
		{4096, 0},      // nothing to spare: no cap
		{5000, 904},    // 4096 kept for the host
		{32768, 24576}, // a quarter kept
		{4194304, 3145728},
	} {
		if got := hostPidsCap(tc.host); got != tc.want {
			t.Errorf("hostPidsCap(%d) = %d, want %d", tc.host, got, tc.want)
		}
	}
}

// TestDestroyRemovesLeftCgroups checks that Destroy removes the empty
// cgroup directories of a sandbox runsc does not know (a start killed
// before runsc recorded it), in every hierarchy, killing the processes
// such a start leaves in them.
func TestDestroyRemovesLeftCgroups(t *testing.T) {
	testenv.RequireRoot(t)
	runsc := filepath.Join(t.TempDir(), "runsc")
	// A runsc that knows no sandbox.
	if err := os.WriteFile(runsc, []byte("#!/bin/sh\necho 'container does not exist' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	parent := "/nestbox-test-leftcg"
	d, err := New(Config{Runsc: runsc, Root: t.TempDir(), CgroupParent: parent, TotalPidsLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	const id = "leftleftleftleftleft"
	var made []string
	for _, ctrl := range []string{"cpu", "memory", "pids"} {
		dir := filepath.Join(cgroupRoot, ctrl, parent, id)
		if err := os.MkdirAll(dir, 0o755); err == nil {
			made = append(made, dir)
		}
	}
	if len(made) == 0 {
		dir := filepath.Join(cgroupRoot, parent, id) // cgroup v2
		if err := os.MkdirAll(dir, 0o755); err != nil {
			testenv.Missing(t, "a writable cgroup hierarchy: "+err.Error())
		}
		made = append(made, dir)
	}
	t.Cleanup(func() {
		for _, dir := range made {
			os.Remove(dir)
			os.Remove(filepath.Dir(dir))
		}
	})
	// A process left in one of them (the sandbox or gofer of a killed
	// start): the destroy kills it.
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }() // reap it, as init would
	t.Cleanup(func() { sleeper.Process.Kill() })
	if err := os.WriteFile(filepath.Join(made[0], "cgroup.procs"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Destroy(t.Context(), id); err != nil {
		t.Fatalf("destroy with a process in %s: %v", made[0], err)
	}
	select {
	case err := <-exited:
		if ws, ok := sleeper.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Errorf("the process in the sandbox's cgroup ended with %v, want killed by SIGKILL", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the process in the sandbox's cgroup %s still runs after the destroy", made[0])
	}
	for _, dir := range made {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s is still there after the destroy: %v", dir, err)
		}
	}
}
