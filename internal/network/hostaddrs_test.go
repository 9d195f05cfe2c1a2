package network

import (
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"nestbox.dev/internal/testenv"
)

// TestHostAddrsWhileAddressesChange reads the addresses while another
// goroutine adds and removes them, as other sandboxes' setups do on a busy
// host: the kernel then marks dumps interrupted, and hostAddrs must read
// again rather than fail (it failed a create in CI once).
func TestHostAddrsWhileAddressesChange(t *testing.T) {
	testenv.RequireRoot(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New() // also switches this thread into it
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			t.Errorf("back to the original namespace: %v", err)
		}
		ns.Close()
	}()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// Many addresses make each dump span several messages, so that a
	// change can land in the middle of one.
	const links, perLink = 4, 64
	var dummies []netlink.Link
	for i := range links {
		// veth, not dummy: the dummy module is not on every host.
		d := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "nbtd" + string(rune('0'+i))}, PeerName: "nbtp" + string(rune('0'+i))}
		if err := h.LinkAdd(d); err != nil {
			t.Fatal(err)
		}
		l, err := h.LinkByName(d.Name)
		if err != nil {
			t.Fatal(err)
		}
		for j := range perLink {
			a := &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 99, byte(i), byte(j+1)), Mask: net.CIDRMask(32, 32)}}
			if err := h.AddrAdd(l, a); err != nil {
				t.Fatal(err)
			}
		}
		dummies = append(dummies, l)
	}

	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		a := &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 98, 0, 1), Mask: net.CIDRMask(32, 32)}}
		for !stop.Load() {
			h.AddrAdd(dummies[0], a)
			h.AddrDel(dummies[0], a)
			time.Sleep(time.Millisecond) // a very busy host, not a livelock
		}
	}()
	const reads = 300
	for i := range reads {
		addrs, err := hostAddrs()
		if err != nil {
			stop.Store(true)
			<-done
			t.Fatalf("read %d of %d: %v", i+1, reads, err)
		}
		if len(addrs) < links*perLink {
			stop.Store(true)
			<-done
			t.Fatalf("read %d: %d addresses, want at least %d", i+1, len(addrs), links*perLink)
		}
	}
	stop.Store(true)
	<-done
}
