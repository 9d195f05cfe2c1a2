package agent

import (
	"encoding/binary"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"nestbox.dev/internal/network"
	"nestbox.dev/internal/testenv"
)

// markedClient talks to sandboxes the way the agent does: its sockets
// carry network.AgentMark, without which the host drops them.
func markedClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{Timeout: 2 * time.Second, Control: network.MarkControl}).DialContext,
	}}
}

// hostAddress is an address of the host's own outward interface (not
// loopback, not a link of the tests).
func hostAddress(t *testing.T) netip.Addr {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 || strings.HasPrefix(i.Name, testPrefix) {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && ip.IsGlobalUnicast() {
					return ip
				}
			}
		}
	}
	testenv.Missing(t, "the host has no outward IPv4 address")
	return netip.Addr{}
}

// inNS runs fn on a locked OS thread inside the namespace at path. The
// thread is dropped rather than reused if it cannot go back.
func inNS(t *testing.T, path string, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- err
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	if err := <-errc; err != nil {
		t.Fatalf("in %s: %v", path, err)
	}
}

// spoofCheck sends UDP datagrams to the fake outside host from inside a
// running sandbox's network namespace, as raw Ethernet frames on its eth0
// (what gVisor's netstack would put there): those from the sandbox's own
// address arrive, those from any other source (another sandbox's, its
// next hop's, an outside address) do not.
func spoofCheck(t *testing.T, sb network.Sandbox) {
	t.Helper()
	// The listener's socket is made inside the fake host's namespace.
	var pc net.PacketConn
	inNS(t, "/var/run/netns/"+extNS, func() (err error) {
		pc, err = net.ListenPacket("udp4", extAddr+":9999")
		return err
	})
	defer pc.Close()
	got := make(chan string, 64)
	go func() {
		defer close(got)
		buf := make([]byte, 1500)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()

	// The frames go to the sandbox's next hop: the host's end of the link,
	// or in the shared-address layout the NAT namespace's end.
	var nextHop netlink.Link
	var err error
	if sb.NATNS != "" {
		inNS(t, sb.NATNS, func() (err error) {
			nextHop, err = netlink.LinkByName("gw0")
			return err
		})
	} else if nextHop, err = netlink.LinkByName(sb.HostIf); err != nil {
		t.Fatal(err)
	}
	var fd, ifindex int
	var srcMAC net.HardwareAddr
	inNS(t, sb.NetNS, func() error {
		eth0, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		ifindex, srcMAC = eth0.Attrs().Index, eth0.Attrs().HardwareAddr
		// Protocol 0: send only, receive nothing.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	defer unix.Close(fd)
	dst := netip.MustParseAddr(extAddr)
	send := func(src netip.Addr, tag string) {
		t.Helper()
		frame := udpFrame(nextHop.Attrs().HardwareAddr, srcMAC, src, dst, 9999, []byte(tag))
		to := &unix.SockaddrLinklayer{Ifindex: ifindex, Protocol: htons(unix.ETH_P_IP), Halen: 6}
		copy(to.Addr[:], nextHop.Attrs().HardwareAddr)
		if err := unix.Sendto(fd, frame, 0, to); err != nil {
			t.Fatalf("send from %s: %v", src, err)
		}
	}
	wait := func(want string) []string {
		t.Helper()
		var seen []string
		timeout := time.After(10 * time.Second)
		for {
			select {
			case p, ok := <-got:
				if !ok {
					t.Fatalf("listener closed before %q", want)
				}
				seen = append(seen, p)
				if p == want {
					return seen
				}
			case <-timeout:
				t.Fatalf("%q did not arrive (got %q)", want, seen)
			}
		}
	}
	send(sb.GuestIP, "genuine")
	wait("genuine")
	// Another sandbox's address, the next hop's, and an outside one; in
	// the shared layout also the sandbox's own address on the host side,
	// which only its NAT namespace may put on its packets.
	spoofed := []netip.Addr{sb.Gateway(), sb.Addr().Next().Next().Next().Next(), netip.MustParseAddr("203.0.113.77")}
	if sb.NATNS != "" {
		spoofed = append(spoofed, sb.Addr())
	}
	for _, a := range spoofed {
		send(a, "spoofed "+a.String())
	}
	// Same path, same order: once this one is in, a spoofed one that got
	// through would be too.
	send(sb.GuestIP, "after")
	for _, p := range wait("after") {
		if strings.HasPrefix(p, "spoofed") {
			t.Errorf("a datagram from a spoofed source arrived: %q", p)
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// udpFrame builds an Ethernet frame carrying an IPv4 UDP datagram (UDP
// checksum 0: none, which IPv4 allows).
func udpFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, port uint16, payload []byte) []byte {
	b := make([]byte, 14+20+8+len(payload))
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:], unix.ETH_P_IP)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8], ip[9] = 64, unix.IPPROTO_UDP
	s, d := src.As4(), dst.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := b[34:42]
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], port)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(b[42:], payload)
	return b
}
