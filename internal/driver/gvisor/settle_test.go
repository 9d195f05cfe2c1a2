package gvisor

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// orphanRunsc starts, as an orphan (its parent exits at once, as a killed
// agent's runsc would be), a fake runsc with args that records its pid and
// then runs body. It returns the pid.
func orphanRunsc(t *testing.T, dir, body string, args ...string) int {
	t.Helper()
	script := filepath.Join(dir, "runsc")
	if _, err := os.Stat(script); err != nil {
		if err := os.WriteFile(script, []byte("#!/bin/sh\necho $$ > \"$PIDFILE\"\neval \"$BODY\"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pidFile := filepath.Join(dir, "pid-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + a + "'"
	}
	cmd := exec.Command("/bin/sh", "-c", script+" "+strings.Join(quoted, " ")+" </dev/null >/dev/null 2>&1 &")
	cmd.Env = append(os.Environ(), "PIDFILE="+pidFile, "BODY="+body)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			t.Cleanup(func() { killPid(pid) })
			return pid
		}
	}
	t.Fatalf("the fake runsc %v did not start", args)
	return 0
}

func killPid(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}

// TestSettle checks that a restarted agent's driver waits for the state
// changing runsc commands a killed agent left over its root, kills the
// ones that do not end in time, and leaves every other process alone.
func TestSettle(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	flag := "--root=" + root
	d, err := New(Config{Runsc: "/bin/true", Root: root, TotalPidsLimit: -1, SettleTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	// Left alone: a sandbox's own process, a read-only command, another
	// root's restore, and a restore that is this process's child. Each
	// outlives SettleTimeout: one waited for would be killed.
	others := []int{
		orphanRunsc(t, dir, "sleep 60", flag, "--platform=systrap", "boot", "x"),
		orphanRunsc(t, dir, "sleep 60", flag, "state", "x"),
		orphanRunsc(t, dir, "sleep 60", "--root="+root+"-other", "restore", "x"),
	}
	child := exec.Command(filepath.Join(dir, "runsc"), flag, "restore", "x")
	child.Env = append(os.Environ(), "PIDFILE="+filepath.Join(dir, "child-pid"), "BODY=sleep 60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })

	// Waited for: a restore that ends by itself.
	done := filepath.Join(dir, "done")
	ending := orphanRunsc(t, dir, "sleep 0.3; echo > "+done, flag, "--platform=systrap", "restore", "-detach", "x")
	if err := d.Settle(context.Background()); err != nil {
		t.Fatalf("settle: %v", err)
	}
	if _, err := os.Stat(done); err != nil {
		t.Errorf("settle returned before the restore it should wait for (pid %d) ended: %v", ending, err)
	}
	if alive(ending) {
		t.Errorf("the restore (pid %d) still runs after settle", ending)
	}
	for _, pid := range others {
		if !alive(pid) {
			t.Errorf("settle ended pid %d, which it must leave alone", pid)
		}
	}
	if !alive(child.Process.Pid) {
		t.Errorf("settle ended this process's own child")
	}

	// Killed: a checkpoint that does not end within SettleTimeout.
	d.cfg.SettleTimeout = 200 * time.Millisecond
	hung := orphanRunsc(t, dir, "while :; do sleep 0.1; done", flag, "checkpoint", "--image-path=/x", "x")
	if err := d.Settle(context.Background()); err != nil {
		t.Fatalf("settle: %v", err)
	}
	if alive(hung) {
		t.Errorf("the hung checkpoint (pid %d) still runs after settle", hung)
	}
}

func TestSettledCommand(t *testing.T) {
	const root = "--root=/r"
	for _, tc := range []struct {
		argv []string
		want bool
	}{
		{[]string{"runsc", root, "--platform=systrap", "restore", "-detach", "id"}, true},
		{[]string{"/bin/sh", "/x/runsc", root, "checkpoint", "id"}, true},
		{[]string{"runsc", root, "delete", "-force", "id"}, true},
		{[]string{"runsc-sandbox", root, "--platform=systrap", "boot", "id"}, false},
		{[]string{"runsc-gofer", root, "gofer", "id"}, false},
		{[]string{"runsc", root, "state", "id"}, false},
		{[]string{"runsc", "--root=/r2", "restore", "id"}, false},
		{[]string{"runsc", root}, false},
		{[]string{"restore", "id"}, false},
	} {
		if got := settledCommand(tc.argv, root); got != tc.want {
			t.Errorf("settledCommand(%q) = %v, want %v", tc.argv, got, tc.want)
		}
	}
}
