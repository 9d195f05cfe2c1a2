package network

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"nestbox.dev/internal/testenv"
)

// ipNetnsFirstUse does to dir what iproute2's `ip netns add` does on its
// first use: make dir shared, and if it is not a mount point, bind it over
// itself first.
func ipNetnsFirstUse(dir string) error {
	err := unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, "")
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, "")
}

// TestNetnsSurvivesIPNetns: a namespace the agent mounted stays removable
// after an operator's first `ip netns add` (which once hid two of them
// under a bind mount, leaking them).
func TestNetnsSurvivesIPNetns(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() {
		for range 3 {
			unix.Unmount(filepath.Join(dir, "ns"), unix.MNT_DETACH)
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	if err := ensureNetnsMount(dir, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if err := ensureNetnsMount(dir, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("second call: %v", err)
	}
	// A namespace file, mounted as netns.NewNamed does.
	ns := filepath.Join(dir, "ns")
	if err := os.WriteFile(ns, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("/proc/self/ns/net", ns, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if err := ipNetnsFirstUse(dir); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(ns, unix.MNT_DETACH); err != nil {
		t.Fatalf("the namespace cannot be unmounted after `ip netns add`: %v", err)
	}
	if err := os.Remove(ns); err != nil {
		t.Fatalf("the namespace file cannot be removed: %v", err)
	}
}

// TestNetnsDirWithEntriesLeftAlone: a plain directory that already holds
// namespaces is not bound over (that would hide them).
func TestNetnsDirWithEntriesLeftAlone(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "old"), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := ensureNetnsMount(dir, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); !errors.Is(err, unix.EINVAL) {
		unix.Unmount(dir, unix.MNT_DETACH)
		t.Fatalf("the directory was made a mount point (make shared: %v)", err)
	}
}
