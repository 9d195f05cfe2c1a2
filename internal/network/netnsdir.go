package network

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"
)

// ensureNetnsMount makes dir (the named-namespace directory) a shared
// mount point of its own, as iproute2's `ip netns add` does on first use.
//
// Why: if dir is a plain directory when our namespaces are mounted in it
// and someone later runs `ip netns add`, iproute2 bind-mounts dir over
// itself, and on this kernel the new mount does not carry the namespace
// mounts already in it: they are hidden under it, cannot be unmounted by
// path, and every one of our namespaces made before is leaked. Making dir
// a mount point first turns `ip netns add` into a mere propagation change.
//
// A dir that is not a mount point but already holds entries (a restart
// with namespaces of a previous run) is left alone, for the same reason:
// binding over it would hide them; a warning says so.
func ensureNetnsMount(dir string, log *slog.Logger) error {
	err := unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		return nil // a mount point already
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	if len(entries) > 0 {
		log.Warn("the network namespace directory is not a mount point and holds namespaces; a later `ip netns add` may hide them", "dir", dir, "namespaces", len(entries))
		return nil
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	return nil
}
