package network

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/testenv"
)

// The test network: its own prefix and pool, and fake outside hosts in a
// namespace of its own, so no packet leaves this machine. The fake
// "public" host is at a documentation address (203.0.113.0/24, not in the
// default deny list); the same namespace also answers on one address of
// each range the deny list blocks. Those addresses are routed only for
// traffic from the test pool (a policy-routing rule and table of the
// test's own), so the host's own routing (its real metadata service, say)
// is untouched.
const (
	testPrefix  = "nbt"
	testPool    = "10.213.0.0/24"
	extNS       = "nbt-ext"
	extLink     = "nbtx0"
	extHost     = "203.0.113.1"
	extAddr     = "203.0.113.2"
	extTable    = 4213
	extRulePrio = 4213
)

// fakeDenied are addresses in the ranges the default deny list blocks,
// served by the fake outside host.
var fakeDenied = []struct{ name, addr string }{
	{"metadata", "169.254.169.254"},
	{"10/8", "10.254.77.7"},
	{"172.16/12", "172.31.77.7"},
	{"192.168/16", "192.168.254.7"},
	{"100.64/10", "100.127.77.7"},
}

func newTestManager(t testing.TB, edit ...func(*Config)) *Manager {
	t.Helper()
	testenv.RequireRoot(t)
	for _, tool := range []string{"ip", "curl"} {
		testenv.RequireCommand(t, tool)
	}
	ctx := context.Background()
	cfg := Config{CIDR: testPool, Prefix: testPrefix}
	for _, e := range edit {
		e(&cfg)
	}
	m, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(ctx) })
	return m
}

// TestMain doubles as a tiny HTTP server that tests start inside network
// namespaces (re-executing the test binary under `ip netns exec`).
func TestMain(m *testing.M) {
	if addr := os.Getenv("NBT_SERVE_ADDR"); addr != "" {
		body := []byte(cmp.Or(os.Getenv("NBT_SERVE_BODY"), "ok"))
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
		var lns []net.Listener
		for _, a := range strings.Split(addr, ",") {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns[1:] {
			go srv.Serve(ln)
		}
		srv.Serve(lns[0])
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// serveIn runs an HTTP server in namespace ns on addrs (comma-separated)
// that answers body, or "ok".
func serveIn(ns, addrs string, body ...string) *exec.Cmd {
	self, _ := os.Executable()
	cmd := exec.Command("ip", "netns", "exec", ns, self)
	cmd.Env = append(os.Environ(), "NBT_SERVE_ADDR="+addrs, "NBT_SERVE_BODY="+strings.Join(body, ""))
	return cmd
}

// forTopologies runs f once per network topology: with the guest's own
// pool address, and with the shared guest address behind a NAT namespace.
// topo is the Config edit that selects it.
func forTopologies(t *testing.T, f func(t *testing.T, topo func(*Config))) {
	for _, tc := range []struct {
		name   string
		shared bool
	}{{"unique", false}, {"shared", true}} {
		t.Run(tc.name, func(t *testing.T) { f(t, func(c *Config) { c.SharedGuestAddress = tc.shared }) })
	}
}

// ip runs an ip(8) command of the tests' scaffolding.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// startExternal makes the fake outside hosts, each with an HTTP server on
// :8080.
func startExternal(t *testing.T) {
	t.Helper()
	cleanup := func() {
		ip("rule", "del", "priority", fmt.Sprint(extRulePrio))
		ip("route", "flush", "table", fmt.Sprint(extTable))
		ip("link", "del", extLink)
		ip("netns", "del", extNS)
	}
	cleanup()
	steps := [][]string{
		{"netns", "add", extNS},
		{"-n", extNS, "link", "set", "lo", "up"},
		{"link", "add", extLink, "type", "veth", "peer", "name", "eth0", "netns", extNS},
		{"addr", "add", extHost + "/30", "dev", extLink},
		{"link", "set", extLink, "up"},
		{"-n", extNS, "addr", "add", extAddr + "/30", "dev", "eth0"},
		{"-n", extNS, "link", "set", "eth0", "up"},
		{"-n", extNS, "route", "add", "default", "via", extHost},
		{"rule", "add", "priority", fmt.Sprint(extRulePrio), "from", testPool, "lookup", fmt.Sprint(extTable)},
	}
	listen := extAddr + ":8080"
	for _, d := range fakeDenied {
		steps = append(steps,
			[]string{"-n", extNS, "addr", "add", d.addr + "/32", "dev", "eth0"},
			[]string{"route", "add", d.addr + "/32", "via", extAddr, "dev", extLink, "table", fmt.Sprint(extTable)})
		listen += "," + d.addr + ":8080"
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			cleanup()
			t.Fatal(err)
		}
	}
	srv := serveIn(extNS, listen)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Kill()
		srv.Wait()
		cleanup()
	})
	for range 100 {
		if exec.Command("ip", "netns", "exec", extNS, "curl", "-s", "-o", "/dev/null", "-m", "1", "http://"+extAddr+":8080/").Run() == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("fake external host did not come up")
}

func nsName(sb Sandbox) string { return strings.TrimPrefix(sb.NetNS, netnsDir+"/") }

// reach reports whether a client in sb's namespace can fetch url; with
// from, the client binds that source address.
func reach(sb Sandbox, url string, from ...string) bool {
	args := []string{"netns", "exec", nsName(sb), "curl", "-s", "-o", "/dev/null", "-m", "2"}
	if len(from) > 0 {
		args = append(args, "--interface", from[0])
	}
	return exec.Command("ip", append(args, url)...).Run() == nil
}

func setup(t testing.TB, m *Manager, id string, opts Options) Sandbox {
	t.Helper()
	sb, err := m.Setup(context.Background(), id, opts)
	if err != nil {
		t.Fatalf("setup %s: %v", id, err)
	}
	t.Cleanup(func() { m.Teardown(context.Background(), sb) })
	return sb
}

func TestIsolation(t *testing.T) {
	forTopologies(t, func(t *testing.T, topo func(*Config)) {
		m := newTestManager(t, topo)
		a := setup(t, m, "iso-a", Options{Internet: true})
		b := setup(t, m, "iso-b", Options{Internet: true})

		// A service in B's namespace.
		srv := serveIn(nsName(b), b.GuestIP.String()+":8081")
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { srv.Process.Kill(); srv.Wait() }()
		// A service on every address of the host (the agent's port, say).
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		port := ln.Addr().(*net.TCPAddr).Port

		// The agent (a marked socket) reaches B's service.
		bAddr := net.JoinHostPort(b.Addr().String(), "8081")
		marked := &net.Dialer{Timeout: time.Second, Control: MarkControl}
		var c net.Conn
		for range 100 {
			if c, err = marked.Dial("tcp", bAddr); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("a marked socket cannot reach a service in sandbox B: %v", err)
		}
		c.Close()
		// Any other local process does not.
		if c, err := (&net.Dialer{Timeout: time.Second}).Dial("tcp", bAddr); err == nil {
			c.Close()
			t.Error("an unmarked local socket reached a service in sandbox B")
		}
		bURL := "http://" + bAddr + "/"
		if reach(a, bURL) {
			t.Error("sandbox A reached sandbox B")
		}
		for _, ip := range []netip.Addr{a.HostIP, b.HostIP} {
			if reach(a, fmt.Sprintf("http://%s:%d/", ip, port)) {
				t.Errorf("sandbox A reached the host's port %d on %s", port, ip)
			}
		}
		// (127.0.0.1 inside A's namespace is A's own loopback: not a probe of
		// the host.)
		host, err := hostAddrs()
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range host {
			if !h.IsLoopback() && reach(a, fmt.Sprintf("http://%s:%d/", h, port)) {
				t.Errorf("sandbox A reached the host's port %d on %s", port, h)
			}
		}
	})
}

// TestAntiSpoofing checks that a sandbox sends only from its own address:
// datagrams from another address of the sandbox's interface (another
// sandbox's, and an outside one) do not reach the fake outside host while
// those from the genuine address do; and IPv6 is off on both ends of its
// link.
func TestAntiSpoofing(t *testing.T) {
	forTopologies(t, func(t *testing.T, topo func(*Config)) {
		m := newTestManager(t, topo)
		startExternal(t)
		sb := setup(t, m, "spoof", Options{Internet: true})
		other := setup(t, m, "spoof-other", Options{Internet: true})
		spoofed := []netip.Addr{other.Addr(), netip.MustParseAddr("203.0.113.77")}
		for _, a := range spoofed {
			if err := ip("-n", nsName(sb), "addr", "add", a.String()+"/32", "dev", "eth0"); err != nil {
				t.Fatal(err)
			}
		}
		got := listenUDPIn(t, extNS, extAddr+":9999")
		nsh, err := netns.GetFromPath(sb.NetNS)
		if err != nil {
			t.Fatal(err)
		}
		defer nsh.Close()
		send := func(from netip.Addr, tag string) {
			t.Helper()
			if err := onThreadIn(nsh, func() error {
				c, err := net.DialUDP("udp4", &net.UDPAddr{IP: from.AsSlice()}, &net.UDPAddr{IP: net.ParseIP(extAddr), Port: 9999})
				if err != nil {
					return err
				}
				defer c.Close()
				_, err = c.Write([]byte(tag))
				return err
			}); err != nil {
				t.Fatalf("send from %s: %v", from, err)
			}
		}
		send(sb.GuestIP, "genuine")
		waitFor(t, got, "genuine")
		for _, a := range spoofed {
			send(a, "spoofed "+a.String())
		}
		// The same path keeps the order: once this one is in, a spoofed one
		// that got through would be too.
		send(sb.GuestIP, "after")
		for _, tag := range waitFor(t, got, "after") {
			if strings.HasPrefix(tag, "spoofed") {
				t.Errorf("a datagram from a spoofed source arrived: %q", tag)
			}
		}

		if b, _ := os.ReadFile("/proc/sys/net/ipv6/conf/" + sb.HostIf + "/disable_ipv6"); strings.TrimSpace(string(b)) != "1" {
			t.Errorf("IPv6 on %s: disable_ipv6=%q, want 1", sb.HostIf, b)
		}
		var inside []byte
		if err := onThreadIn(nsh, func() (err error) {
			inside, err = os.ReadFile("/proc/sys/net/ipv6/conf/eth0/disable_ipv6")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(inside)) != "1" {
			t.Errorf("IPv6 on the guest end: disable_ipv6=%q, want 1", inside)
		}
		if sb.NATNS != "" {
			assertIPv6Off(t, sb.NATNS, natGuestIf, natHostIf)
		}
	})
}

// listenUDPIn receives datagrams on addr inside namespace ns and sends
// their payloads to the returned channel until the test ends.
func listenUDPIn(t *testing.T, ns, addr string) <-chan string {
	t.Helper()
	nsh, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()
	var pc net.PacketConn
	if err := onThreadIn(nsh, func() (err error) {
		pc, err = net.ListenPacket("udp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	got := make(chan string, 64)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	return got
}

// waitFor reads payloads until want arrives (failing after 10 s) and
// returns all it read.
func waitFor(t *testing.T, got <-chan string, want string) []string {
	t.Helper()
	var seen []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case p, ok := <-got:
			if !ok {
				t.Fatalf("listener closed before %q arrived", want)
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

// TestConntrackLimit checks that one sandbox cannot hold more connections
// through the host than its limit.
func TestConntrackLimit(t *testing.T) {
	forTopologies(t, func(t *testing.T, topo func(*Config)) {
		const limit = 3
		m := newTestManager(t, topo, func(c *Config) { c.ConntrackLimit = limit })
		startExternal(t)
		sb := setup(t, m, "conntrack", Options{Internet: true})
		nsh, err := netns.GetFromPath(sb.NetNS)
		if err != nil {
			t.Fatal(err)
		}
		defer nsh.Close()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		var opened int
		for range limit + 2 {
			var c net.Conn
			// The socket is made on a thread inside the namespace and stays
			// there.
			err := onThreadIn(nsh, func() (err error) {
				c, err = net.DialTimeout("tcp", extAddr+":8080", 2*time.Second)
				return err
			})
			if err == nil {
				conns = append(conns, c)
				opened++
			}
		}
		if opened != limit {
			t.Fatalf("opened %d connections with a limit of %d", opened, limit)
		}
	})
}

func TestTeardownLeavesNothing(t *testing.T) {
	forTopologies(t, func(t *testing.T, topo func(*Config)) {
		m := newTestManager(t, topo)
		ctx := context.Background()
		sb, err := m.Setup(ctx, "gone", Options{Internet: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Teardown(ctx, sb); err != nil {
			t.Fatal(err)
		}
		if err := m.Teardown(ctx, sb); err != nil {
			t.Fatalf("second teardown: %v", err)
		}
		assertGone(t, m, sb)
		// The slot is free again.
		sb2, err := m.Setup(ctx, "again", Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Teardown(ctx, sb2)
		if sb2.Slot != sb.Slot {
			t.Errorf("slot %d not reused (got %d)", sb.Slot, sb2.Slot)
		}
	})
}

func TestFailedSetupUnwinds(t *testing.T) {
	forTopologies(t, func(t *testing.T, topo func(*Config)) {
		m := newTestManager(t, topo)
		ctx := context.Background()
		// A namespace of that name already exists: setup fails at its first
		// step and must leave the slot free and the existing namespace alone.
		if err := ip("netns", "add", testPrefix+"-busy"); err != nil {
			t.Fatal(err)
		}
		defer ip("netns", "del", testPrefix+"-busy")
		if _, err := m.Setup(ctx, "busy", Options{}); err == nil {
			t.Fatal("setup over an existing namespace succeeded")
		}
		if len(m.used) != 0 {
			t.Fatalf("slots still used after a failed setup: %v", m.used)
		}
		if _, err := os.Stat(netnsDir + "/" + testPrefix + "-busy"); err != nil {
			t.Fatalf("failed setup removed a namespace it did not make: %v", err)
		}
		// Invalid input.
		if _, err := m.Setup(ctx, "bad id", Options{}); !errors.Is(err, errdefs.ErrInvalid) {
			t.Fatalf("bad id: %v", err)
		}
		if _, err := m.Setup(ctx, "v6", Options{AllowOut: []netip.Prefix{netip.MustParsePrefix("::/0")}}); !errors.Is(err, errdefs.ErrInvalid) {
			t.Fatalf("ipv6 rule: %v", err)
		}
	})
}

// TestFailureAfterEveryStep fails Setup after each of its steps in turn
// and checks that nothing of the sandbox is left: namespace, links, IFB,
// nft chain and elements, slot.
func TestFailureAfterEveryStep(t *testing.T) {
	forTopologies(t, func(t *testing.T, topo func(*Config)) {
		m := newTestManager(t, topo)
		ctx := context.Background()
		var steps []string
		m.failAfter = func(step string) error { steps = append(steps, step); return nil }
		sb, err := m.Setup(ctx, "steps", Options{Internet: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Teardown(ctx, sb); err != nil {
			t.Fatal(err)
		}
		if len(steps) < 10 {
			t.Fatalf("only %d steps seen: %v", len(steps), steps)
		}
		injected := errors.New("injected")
		for _, at := range steps {
			t.Run(at, func(t *testing.T) {
				m.failAfter = func(step string) error {
					if step == at {
						return injected
					}
					return nil
				}
				defer func() { m.failAfter = nil }()
				sb, err := m.Setup(ctx, "fail-"+at, Options{Internet: true, AllowOut: []netip.Prefix{netip.MustParsePrefix("203.0.113.128/25")}})
				if !errors.Is(err, injected) {
					t.Fatalf("setup failing after %s: got %v", at, err)
				}
				// Setup returns what it was building, so that the names can
				// be checked.
				assertGone(t, m, sb)
				if len(m.used) != 0 {
					t.Errorf("slots used after failing at %s: %v", at, m.used)
				}
			})
		}
	})
}

func assertGone(t *testing.T, m *Manager, sb Sandbox) {
	t.Helper()
	for _, ns := range []string{sb.NetNS, filepath.Join(netnsDir, m.natName(sb.ID))} {
		if _, err := os.Stat(ns); err == nil {
			t.Errorf("netns %s still exists", ns)
		}
	}
	for _, link := range []string{sb.HostIf, m.ifbName(sb.Slot)} {
		if _, err := net.InterfaceByName(link); err == nil {
			t.Errorf("link %s still exists", link)
		}
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	if ch, err := c.ListChain(m.table(), m.chainName(sb.Slot)); err == nil && ch != nil {
		t.Errorf("nft chain %s of %s remains", ch.Name, sb.ID)
	}
	egressMap, _, guests := m.sets()
	for _, s := range []*nftables.Set{egressMap, guests} {
		els, err := c.GetSetElements(s)
		if err != nil {
			t.Fatalf("list %s: %v", s.Name, err)
		}
		for _, e := range els {
			if bytes.HasPrefix(e.Key, ifnameKey(sb.HostIf)) {
				t.Errorf("nft element of %s remains in @%s", sb.HostIf, s.Name)
			}
		}
	}
}

func TestSlotAddrs(t *testing.T) {
	m := &Manager{pool: netip.MustParsePrefix("10.200.0.0/16")}
	for slot, want := range map[int][2]string{0: {"10.200.0.1", "10.200.0.2"}, 1: {"10.200.0.5", "10.200.0.6"}, 64: {"10.200.1.1", "10.200.1.2"}} {
		h, g := m.slotAddrs(slot)
		if h.String() != want[0] || g.String() != want[1] {
			t.Errorf("slot %d: got %s %s, want %v", slot, h, g, want)
		}
	}
}

func TestMergePrefixes(t *testing.T) {
	in := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.200.0.0/16"),
		netip.MustParsePrefix("192.0.2.2/32"), netip.MustParsePrefix("11.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
	got := mergePrefixes(in)
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("11.0.0.0/8"), netip.MustParsePrefix("192.0.2.2/32")}
	if !slices.Equal(got, want) {
		t.Fatalf("merge %v: got %v, want %v", in, got, want)
	}
	// 10/8 and 11/8 touch: one interval, 10.0.0.0 to 12.0.0.0.
	els := denyElements(got)
	if len(els) != 4 || !bytes.Equal(els[0].Key, []byte{10, 0, 0, 0}) || !bytes.Equal(els[1].Key, []byte{12, 0, 0, 0}) || !els[1].IntervalEnd {
		t.Fatalf("interval elements of %v: %+v", got, els)
	}
}

// TestRateLimitInstalled checks the egress shaper's configuration: the
// host end's ingress goes to an IFB device with a token bucket of the
// configured rate and burst. (internal/agent's TestEgressRateLimit checks
// that it holds back a real sandbox.)
func TestRateLimitInstalled(t *testing.T) {
	forTopologies(t, func(t *testing.T, topo func(*Config)) {
		m := newTestManager(t, topo)
		sb := setup(t, m, "rate", Options{Internet: true})
		ifb, err := netlink.LinkByName(m.ifbName(sb.Slot))
		if err != nil {
			t.Fatal(err)
		}
		qs, err := netlink.QdiscList(ifb)
		if err != nil {
			t.Fatal(err)
		}
		var tbf *netlink.Tbf
		for _, q := range qs {
			if q, ok := q.(*netlink.Tbf); ok {
				tbf = q
			}
		}
		if tbf == nil {
			t.Fatalf("no tbf on %s: %v", ifb.Attrs().Name, qs)
		}
		if tbf.Rate != DefaultRate {
			t.Errorf("tbf rate %d, want %d", tbf.Rate, DefaultRate)
		}
		if burst := netlink.Xmitsize(tbf.Rate, tbf.Buffer); burst < DefaultBurst*99/100 || burst > DefaultBurst*101/100 {
			t.Errorf("tbf burst %d, want %d", burst, DefaultBurst)
		}
		host, err := netlink.LinkByName(sb.HostIf)
		if err != nil {
			t.Fatal(err)
		}
		filters, err := netlink.FilterList(host, netlink.MakeHandle(0xffff, 0))
		if err != nil {
			t.Fatal(err)
		}
		redirected := false
		for _, f := range filters {
			if u, ok := f.(*netlink.U32); ok {
				for _, a := range u.Actions {
					if mir, ok := a.(*netlink.MirredAction); ok && mir.Ifindex == ifb.Attrs().Index && mir.MirredAction == netlink.TCA_EGRESS_REDIR {
						redirected = true
					}
				}
			}
		}
		if !redirected {
			t.Fatalf("no redirect from %s to %s: %v", sb.HostIf, ifb.Attrs().Name, filters)
		}
		m.Teardown(context.Background(), sb)
		if _, err := net.InterfaceByName(ifb.Attrs().Name); err == nil {
			t.Fatalf("%s left after teardown", ifb.Attrs().Name)
		}
	})
}

// TestReadd checks that Readd puts back the guest address and default
// route that gVisor takes off the interface when a sandbox starts.
func TestReadd(t *testing.T) {
	forTopologies(t, func(t *testing.T, topo func(*Config)) {
		m := newTestManager(t, topo)
		sb := setup(t, m, "readd", Options{})
		if err := ip("-n", nsName(sb), "addr", "flush", "dev", "eth0"); err != nil {
			t.Fatal(err)
		}
		if err := m.Readd(context.Background(), sb); err != nil {
			t.Fatal(err)
		}
		// Twice: a restore may run it on an interface that has the address.
		if err := m.Readd(context.Background(), sb); err != nil {
			t.Fatalf("second readd: %v", err)
		}
		nsh, err := netns.GetFromPath(sb.NetNS)
		if err != nil {
			t.Fatal(err)
		}
		defer nsh.Close()
		h, err := netlink.NewHandleAt(nsh)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		eth0, err := h.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		addrs, _ := h.AddrList(eth0, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != sb.GuestPrefix().String() {
			t.Errorf("addresses after readd: %v, want %s", addrs, sb.GuestPrefix())
		}
		routes, _ := h.RouteList(eth0, netlink.FAMILY_V4)
		hasDefault := false
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.Equal(sb.Gateway().AsSlice()) {
				hasDefault = true
			}
		}
		if !hasDefault {
			t.Errorf("no default route via %s after readd: %v", sb.Gateway(), routes)
		}
	})
}
