package network

import (
	"net"
	"net/netip"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"nestbox.dev/internal/testenv"
)

// TestAddrWatch checks what decides whether a Setup reads every address
// of the host again: a sandbox's address (in the pool) coming or going is
// no change, any other address is, until the addresses are read.
func TestAddrWatch(t *testing.T) {
	testenv.RequireRoot(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New() // the watch's socket is made in this namespace
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
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "nbtw0"}, PeerName: "nbtw1"}); err != nil {
		t.Fatal(err)
	}
	l, err := h.LinkByName("nbtw0")
	if err != nil {
		t.Fatal(err)
	}
	w := newAddrWatch(netip.MustParsePrefix("10.97.0.0/16"))
	defer w.close()
	if w.fd < 0 {
		t.Fatal("no netlink socket")
	}
	addr := func(a, b, c, d byte) *netlink.Addr {
		return &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(a, b, c, d), Mask: net.CIDRMask(30, 32)}}
	}
	if w.changed() {
		t.Fatal("changed before anything changed")
	}
	// Sandboxes come and go: their host ends' addresses are in the pool.
	for i := range 50 {
		a := addr(10, 97, byte(i), 1)
		if err := h.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := h.AddrDel(l, a); err != nil {
				t.Fatal(err)
			}
		}
	}
	if w.changed() {
		t.Error("pool addresses counted as a change of the host's addresses")
	}
	// The host gets an address of its own (DHCP, a new interface).
	if err := h.AddrAdd(l, addr(192, 0, 2, 1)); err != nil {
		t.Fatal(err)
	}
	if !w.changed() {
		t.Fatal("a new host address is no change")
	}
	if !w.changed() {
		t.Error("the change was forgotten before the addresses were read")
	}
	w.read()
	if w.changed() {
		t.Error("still changed after the addresses were read")
	}
	if err := h.AddrDel(l, addr(192, 0, 2, 1)); err != nil {
		t.Fatal(err)
	}
	if !w.changed() {
		t.Error("a removed host address is no change")
	}
}

// TestAllocateLowestFree checks that a slot comes from the lowest free
// one, as before, and that finding it does not walk past the used slots:
// the work of an allocation must not grow with the sandboxes running.
func TestAllocateLowestFree(t *testing.T) {
	m := &Manager{nslots: 1024, used: map[int]string{}, pool: netip.MustParsePrefix("10.0.0.0/20")}
	for i := range 500 {
		slot, err := m.allocate("a")
		if err != nil || slot != i {
			t.Fatalf("allocation %d: slot %d, %v", i, slot, err)
		}
	}
	m.used[700] = "adopted" // Adopt of a sandbox a previous agent ran
	for _, s := range []int{300, 7, 150} {
		m.release(s, "a")
	}
	before := m.Ops().SlotsScanned
	for _, want := range []int{7, 150, 300, 500} {
		slot, err := m.allocate("b")
		if err != nil || slot != want {
			t.Fatalf("got slot %d (%v), want %d", slot, err, want)
		}
	}
	if n := m.Ops().SlotsScanned - before; n > 4 {
		t.Errorf("4 allocations looked at %d slots", n)
	}
	m.used[7] = "rebuilt" // Rebuild claims a freed slot
	m.release(7, "b")     // not its owner any more: stays used
	m.release(150, "b")
	m.used[150] = "reserved"
	if slot, _ := m.allocate("c"); slot != 501 {
		t.Errorf("got slot %d, want 501 (150 was claimed after its release)", slot)
	}
	for m.high < 700 {
		m.allocate("d")
	}
	if slot, _ := m.allocate("e"); slot != 701 {
		t.Errorf("got slot %d, want 701 (700 is adopted)", slot)
	}
	for range 1024 - len(m.used) {
		if _, err := m.allocate("f"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.allocate("g"); err == nil {
		t.Error("allocation in a full pool succeeded")
	}
}
