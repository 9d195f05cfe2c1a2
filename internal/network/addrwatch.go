package network

import (
	"errors"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// addrWatch tells whether the host's IPv4 addresses outside the pool may
// have changed since the last look, so that a Setup dumps every address
// of the host only then. A dump lists every sandbox's host end too (one
// address per running sandbox), so dumping on every Setup made each create
// cost more with every sandbox already running.
//
// It is a non-blocking netlink socket subscribed to the kernel's IPv4
// address notifications: no goroutine reads it, the caller drains it
// under its own lock before deciding. Notifications of pool addresses
// (sandboxes coming and going) are ignored; any other, an overflowed
// socket (ENOBUFS: notifications were lost) or a socket that could not be
// made means "changed", which is what the caller assumed before.
//
// Not safe for concurrent use: Manager.denyMu guards it.
type addrWatch struct {
	fd   int // -1: no socket, every look says changed
	pool netip.Prefix
	buf  []byte
	// pending is a change seen and not yet read (read clears it): a
	// failed read of the addresses leaves it for the next Setup.
	pending bool
}

// newAddrWatch subscribes to the host's address notifications. It never
// fails: without a socket, changed always reports true.
func newAddrWatch(pool netip.Prefix) *addrWatch {
	w := &addrWatch{fd: -1, pool: pool, buf: make([]byte, 1<<16)}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return w
	}
	// Room for the notifications of many sandboxes coming and going
	// between two Setups; past it the kernel reports ENOBUFS, which is
	// handled as a change.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.RTNLGRP_IPV4_IFADDR - 1)}); err != nil {
		unix.Close(fd)
		return w
	}
	w.fd = fd
	return w
}

// changed drains the notifications that arrived since the last call and
// reports whether any concerns an address outside the pool (or may have:
// lost notifications count as a change), or a change is still pending
// from before. Call it before reading the addresses, and read after a
// successful read: a change during the read shows in the next call.
func (w *addrWatch) changed() bool {
	if w.fd < 0 {
		return true
	}
	for {
		n, _, err := unix.Recvfrom(w.fd, w.buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			return w.pending
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n <= 0 {
			// ENOBUFS (notifications lost) or a broken socket: go on
			// draining what is there; the caller reads afresh.
			w.pending = true
			if !errors.Is(err, unix.ENOBUFS) {
				return true
			}
			continue
		}
		if !w.pending && w.outsidePool(w.buf[:n]) {
			w.pending = true
		}
	}
}

// read records that the addresses were read after the last changed.
func (w *addrWatch) read() { w.pending = false }

// outsidePool reports whether a batch of netlink messages holds an
// address notification of an address outside the pool (or one it cannot
// read).
func (w *addrWatch) outsidePool(b []byte) bool {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return true
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != unix.RTM_NEWADDR && m.Header.Type != unix.RTM_DELADDR {
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			return true
		}
		seen := false
		for _, a := range attrs {
			if a.Attr.Type != unix.IFA_LOCAL && a.Attr.Type != unix.IFA_ADDRESS {
				continue
			}
			ip, ok := netip.AddrFromSlice(a.Value)
			if !ok || !w.pool.Contains(ip.Unmap()) {
				return true
			}
			seen = true
		}
		if !seen {
			return true
		}
	}
	return false
}

// close releases the socket.
func (w *addrWatch) close() {
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}
