package gvisor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nestbox.dev/internal/errdefs"
)

// hangingRunsc writes a fake runsc that records its pid and sleeps where
// a hung runsc would block.
func hangingRunsc(t *testing.T) (runsc, pidFile string) {
	dir := t.TempDir()
	runsc, pidFile = filepath.Join(dir, "runsc"), filepath.Join(dir, "pid")
	script := "#!/bin/sh\necho $$ > " + pidFile + "\nexec sleep 600\n"
	if err := os.WriteFile(runsc, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return runsc, pidFile
}

// TestHungRunscIsKilled checks that every runsc command of a teardown has
// a deadline: a runsc that hangs is killed, and Destroy, State and List
// fail with deadline exceeded instead of blocking the sandbox forever.
func TestHungRunscIsKilled(t *testing.T) {
	runsc, pidFile := hangingRunsc(t)
	d, err := New(Config{Runsc: runsc, Root: filepath.Join(t.TempDir(), "root"), TotalPidsLimit: -1, CommandTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"Destroy": func() error { return d.Destroy(ctx, "abcdefghij0123456789") },
		"State":   func() error { _, err := d.State(ctx, "abcdefghij0123456789"); return err },
		"List":    func() error { _, err := d.List(ctx); return err },
	} {
		os.Remove(pidFile)
		err := call()
		if !errors.Is(err, errdefs.ErrDeadlineExceeded) {
			t.Errorf("%s with a hung runsc: %v, want deadline exceeded", name, err)
		}
		b, rerr := os.ReadFile(pidFile)
		if rerr != nil {
			t.Fatalf("%s: the fake runsc did not run: %v", name, rerr)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		// Killed, and reaped by Wait: signal 0 finds no such process.
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s: the hung runsc (pid %d) is still there: %v", name, pid, err)
		}
	}
}
