package gvisor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/driver/drivertest"
	"nestbox.dev/internal/template"
	"nestbox.dev/internal/testenv"
)

// repoRoot finds the module root, where make puts bin/runsc and bin/envd.
func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "../../..")
}

// testDriver returns a driver on a private runsc root and a minimal rootfs.
func testDriver(t *testing.T) (*Driver, string) {
	testenv.RequireRoot(t)
	root := repoRoot(t)
	runsc := os.Getenv("NESTBOX_RUNSC")
	if runsc == "" {
		runsc = filepath.Join(root, "bin/runsc")
	}
	if _, err := os.Stat(runsc); err != nil {
		testenv.Missing(t, "runsc not built (make runsc): "+err.Error())
	}
	envd := filepath.Join(root, "bin/envd")
	if _, err := os.Stat(envd); err != nil {
		testenv.Missing(t, "envd not built (make envd): "+err.Error())
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Missing(t, "busybox-static not installed")
	}
	work := t.TempDir()
	store, err := template.New(template.Config{Dir: filepath.Join(work, "templates"), Envd: envd})
	if err != nil {
		t.Fatal(err)
	}
	rootfs, err := store.Ensure(context.Background(), "minimal")
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Runsc: runsc, Root: filepath.Join(work, "runsc"), CgroupParent: "/nestbox-test"})
	if err != nil {
		t.Fatal(err)
	}
	// runsc keeps an empty network namespace mounted in its root for
	// gofers; it outlives the sandboxes.
	t.Cleanup(func() {
		// runsc may mount it more than once: unmount until it is gone.
		for unix.Unmount(filepath.Join(work, "runsc", "null-netns"), unix.MNT_DETACH) == nil {
		}
		// runsc removes each sandbox's cgroups but not their parent.
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/nestbox-test")
		for _, d := range dirs {
			os.Remove(d)
		}
	})
	return d, rootfs
}

var seq atomic.Int64

// copyTree gives each test sandbox a writable copy of the rootfs; the agent
// uses an overlay, which the rootfs package tests.
func copyTree(t *testing.T, src string) string {
	dst := filepath.Join(t.TempDir(), "rootfs")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy rootfs: %v: %s", err, out)
	}
	return dst
}

func TestConformance(t *testing.T) {
	d, rootfs := testDriver(t)
	drivertest.Run(t, func(t *testing.T) drivertest.Env {
		return drivertest.Env{
			Driver:   d,
			Parallel: 3,
			NewSpec: func(t *testing.T) driver.Spec {
				id := fmt.Sprintf("nbxt-%06d-%05d", os.Getpid()%1000000, seq.Add(1))
				return driver.Spec{
					ID:       id,
					Dir:      t.TempDir(),
					Rootfs:   copyTree(t, rootfs),
					VCPUs:    1,
					MemoryMB: 256,
					Args:     []string{"/usr/bin/envd", "--port", "49983"},
				}
			},
			Healthy: func(ctx context.Context, t *testing.T, spec driver.Spec) error {
				// No network namespace in this test: ask from inside.
				for ctx.Err() == nil {
					out, err := d.runsc(ctx, "exec", spec.ID, "/bin/sh", "-c", "wget -q -S -O /dev/null http://127.0.0.1:49983/health 2>&1")
					if err == nil && strings.Contains(string(out), "204") {
						return nil
					}
					time.Sleep(50 * time.Millisecond)
				}
				return ctx.Err()
			},
		}
	})
}

// TestRuntimeHeadroom checks that a sandbox's guest sees the memory it
// asked for while its host cgroup lets gVisor use RuntimeHeadroom more,
// after a create and after a checkpoint and restore.
func TestRuntimeHeadroom(t *testing.T) {
	d, rootfs := testDriver(t)
	ctx := context.Background()
	spec := driver.Spec{
		ID:       fmt.Sprintf("nbxt-%06d-%05d", os.Getpid()%1000000, seq.Add(1)),
		Dir:      t.TempDir(),
		Rootfs:   copyTree(t, rootfs),
		VCPUs:    1,
		MemoryMB: 128,
		Args:     []string{"/usr/bin/envd", "--port", "49983"},
	}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Destroy(context.Background(), spec.ID) })
	check := func(when string) {
		t.Helper()
		out, err := d.runsc(ctx, "exec", spec.ID, "/bin/sh", "-c", "grep MemTotal /proc/meminfo")
		if err != nil || !strings.Contains(string(out), strconv.Itoa(128<<10)+" kB") {
			t.Errorf("%s: guest %q, %v; want MemTotal of 128 MiB", when, out, err)
		}
		path := filepath.Join(cgroupRoot, "memory", "nestbox-test", spec.ID, "memory.limit_in_bytes")
		if _, err := os.Stat(path); err != nil {
			path = filepath.Join(cgroupRoot, "nestbox-test", spec.ID, "memory.max")
		}
		b, err := os.ReadFile(path)
		want := int64(128<<20) + RuntimeHeadroom(128<<20)
		if err != nil || strings.TrimSpace(string(b)) != strconv.FormatInt(want, 10) {
			t.Errorf("%s: host limit %q, %v; want %d", when, b, err, want)
		}
	}
	check("after create")
	images := filepath.Join(t.TempDir(), "images")
	if err := d.Checkpoint(ctx, spec.ID, images); err != nil {
		t.Fatal(err)
	}
	if err := d.Restore(ctx, spec, images); err != nil {
		t.Fatal(err)
	}
	check("after restore")
}
