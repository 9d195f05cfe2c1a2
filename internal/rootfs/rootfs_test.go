package rootfs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"nestbox.dev/internal/testenv"
)

func lowerDir(t *testing.T) string {
	lower := filepath.Join(t.TempDir(), "lower")
	os.MkdirAll(filepath.Join(lower, "etc"), 0o755)
	os.WriteFile(filepath.Join(lower, "etc/motd"), []byte("template\n"), 0o644)
	return lower
}

func TestCopyOnWriteAndLimit(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "mkfs.ext4")
	ctx := context.Background()
	lower := lowerDir(t)
	dir := t.TempDir()
	l, err := Mount(ctx, lower, dir, MinSize)
	if err != nil {
		t.Fatal(err)
	}
	defer Unmount(ctx, l)

	// Writes land in the layer; the template is untouched.
	if err := os.WriteFile(filepath.Join(l.Root, "etc/motd"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(l.Root, "etc/motd")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(lower, "etc/motd")); string(b) != "template\n" {
		t.Fatalf("template changed: %q", b)
	}
	// Filling the layer gives ENOSPC.
	f, err := os.Create(filepath.Join(l.Root, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{1}, 1<<20)
	var werr error
	for i := 0; i < 2*MinSize>>20 && werr == nil; i++ {
		_, werr = f.Write(chunk)
	}
	if werr == nil {
		werr = f.Sync()
	}
	f.Close()
	if !errors.Is(werr, unix.ENOSPC) {
		t.Fatalf("filling a %d MiB layer: got %v, want ENOSPC", MinSize>>20, werr)
	}
	// The image is sparse: it uses no more than its size on the host.
	var st unix.Stat_t
	unix.Stat(l.Image, &st)
	if st.Blocks*512 > MinSize+(1<<20) {
		t.Fatalf("image uses %d bytes for a %d-byte layer", st.Blocks*512, MinSize)
	}

	if err := Unmount(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(ctx, l); err != nil {
		t.Fatalf("second unmount: %v", err)
	}
	assertClean(t, dir)
}

func TestFailedMountLeavesNothing(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := Mount(ctx, filepath.Join(dir, "missing"), dir, MinSize); err == nil {
		t.Fatal("mount over a missing template succeeded")
	}
	// Make the overlay mount fail after the loop mount: a lower dir that
	// is a file passes nothing but Stat... use a relative path instead.
	if _, err := Mount(ctx, "relative", dir, MinSize); err == nil {
		t.Fatal("relative lower accepted")
	}
	if _, err := Mount(ctx, lowerDir(t), dir, 1<<20); err == nil {
		t.Fatal("tiny layer accepted")
	}
	// An image that already exists makes Mount fail early and keep it.
	os.WriteFile(filepath.Join(dir, "upper.img"), nil, 0o600)
	if _, err := Mount(ctx, lowerDir(t), dir, MinSize); err == nil {
		t.Fatal("mount over an existing image succeeded")
	}
	os.Remove(filepath.Join(dir, "upper.img"))
	assertClean(t, dir)
}

// TestFailedMountUndoesEachStep fails Mount after each of its steps in
// turn, once the step's resource exists (the hook checks that the image,
// the loop device and the mounts are really there), and checks that the
// failed Mount leaves no file, no mount and no loop device on the image.
func TestFailedMountUndoesEachStep(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "mkfs.ext4")
	ctx := context.Background()
	lower := lowerDir(t)
	injected := errors.New("injected failure")
	for _, failAt := range mountSteps {
		dir := t.TempDir()
		var made []string
		_, err := mount(ctx, lower, dir, MinSize, func(step string) error {
			// What must exist once this step is done.
			switch step {
			case stepImage, stepFormat:
				if _, err := os.Stat(filepath.Join(dir, "upper.img")); err != nil {
					t.Errorf("after %s: %v", step, err)
				}
			case stepLoop:
				if len(loopsBacking(dir)) == 0 {
					t.Errorf("after %s: no loop device backs the image", step)
				}
				if !mounted(filepath.Join(dir, "upper")) {
					t.Errorf("after %s: the image is not mounted", step)
				}
			case stepOverlay:
				if !mounted(filepath.Join(dir, "rootfs")) {
					t.Errorf("after %s: the overlay is not mounted", step)
				}
			}
			made = append(made, step)
			if step == failAt {
				return injected
			}
			return nil
		})
		if !errors.Is(err, injected) {
			t.Errorf("fail at %s: Mount returned %v, want the injected failure", failAt, err)
		}
		if made[len(made)-1] != failAt {
			t.Errorf("fail at %s: the steps done were %v", failAt, made)
		}
		assertClean(t, dir)
	}
}

// TestMountCancelledLeavesNothing cancels Mount's context while mount(8)
// runs (as a create's caller hanging up does): a mount(8) on PATH that
// mounts and then lingers would, if killed by the context, have left the
// writable layer mounted. Mount must let it finish, fail with the
// cancellation, and leave nothing.
func TestMountCancelledLeavesNothing(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "mkfs.ext4")
	real, err := exec.LookPath("mount")
	if err != nil {
		testenv.Missing(t, "mount(8)")
	}
	bin := t.TempDir()
	script := "#!/bin/sh\n" + real + " \"$@\" || exit 1\nsleep 0.5\n"
	if err := os.WriteFile(filepath.Join(bin, "mount"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	_, err = mount(ctx, lowerDir(t), dir, MinSize, func(step string) error {
		if step == stepDirs {
			time.AfterFunc(200*time.Millisecond, cancel) // while mount(8) lingers
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Mount cancelled during mount(8): %v, want context.Canceled", err)
	}
	assertClean(t, dir)
}

// TestUnmountStacked checks that unmount removes every mount stacked on a
// path, and returns.
func TestUnmountStacked(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	for range 3 {
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
	}
	if err := unmount(dir); err != nil {
		t.Fatal(err)
	}
	if mounted(dir) {
		t.Error("still mounted after unmount")
	}
}

func mounted(path string) bool {
	ok, _ := isMountPoint(path)
	return ok
}

// loopsBacking lists the loop devices whose backing file is under dir.
func loopsBacking(dir string) []string {
	var out []string
	loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, lf := range loops {
		if b, _ := os.ReadFile(lf); strings.HasPrefix(strings.TrimSpace(string(b)), dir+"/") {
			out = append(out, lf)
		}
	}
	return out
}

func assertClean(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("left in %s: %v", dir, entries)
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b), dir) {
		t.Errorf("mounts under %s remain", dir)
	}
	for _, lf := range loopsBacking(dir) {
		t.Errorf("loop device %s still backs a file in %s", lf, dir)
	}
}

func TestSize(t *testing.T) {
	for _, tc := range []struct{ req, tpl, min int64 }{
		{0, 0, MinSize},
		{5 << 30, 200 << 20, 5 << 30},
		{100 << 20, 1 << 30, 1<<30 + 1<<30/10},
	} {
		if got := Size(tc.req, tc.tpl); got < tc.min || got%4096 != 0 {
			t.Errorf("Size(%d, %d) = %d, want >= %d and page-aligned", tc.req, tc.tpl, got, tc.min)
		}
	}
}
