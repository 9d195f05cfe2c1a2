package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// onThreadIn runs fn on a locked OS thread switched into ns, then switches
// the thread back. A thread that cannot be switched back is never unlocked,
// so the Go runtime discards it instead of reusing it in the wrong
// namespace.
func onThreadIn(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave network namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// newNamedNS makes the network namespace /var/run/netns/name. It fails
// with EEXIST if the name is taken.
func newNamedNS(name string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		// NewNamed moves this thread into the new namespace, even when it
		// fails after the unshare.
		ns, nerr := netns.NewNamed(name)
		if nerr == nil {
			ns.Close()
		} else if !errors.Is(nerr, os.ErrExist) {
			// NewNamed makes the mount point before the bind mount: a
			// failed mount must not leave it to block the name forever.
			os.Remove(filepath.Join(netnsDir, name))
		}
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(nerr, fmt.Errorf("leave new network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- nerr
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("create network namespace %s: %w", name, err)
	}
	return nil
}

// deleteNamedNS removes a namespace made by newNamedNS; a missing one is
// not an error.
func deleteNamedNS(name string) error {
	p := filepath.Join(netnsDir, name)
	// EINVAL: not a mount point (a half-made namespace); ENOENT: gone.
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount network namespace %s: %w", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network namespace %s: %w", name, err)
	}
	return nil
}

// isNotFound reports whether a netlink error means the object is gone.
func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)
}

// deleteLink deletes the link name (of the handle's namespace); a missing
// one is not an error.
func deleteLink(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err == nil {
		err = h.LinkDel(l)
	}
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// disableIPv6 turns IPv6 off on a link of the calling thread's namespace,
// so that it gets no link-local address. A kernel without IPv6 has
// nothing to turn off.
func disableIPv6(link string) error {
	err := os.WriteFile("/proc/sys/net/ipv6/conf/"+link+"/disable_ipv6", []byte("1"), 0o644)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("disable IPv6 on %s: %w", link, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
