package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/testenv"
)

// The test network: its own prefix and pool, and a fake "internet host" in
// a namespace of its own at a benchmarking address (198.18.0.0/15), so no
// packet leaves this machine.
const (
	testPrefix = "nbt"
	testPool   = "10.213.0.0/24"
	extNS      = "nbt-ext"
	extHost    = "198.18.0.1"
	extAddr    = "198.18.0.2"
)

func newTestManager(t *testing.T) *Manager {
	t.Helper()
	testenv.RequireRoot(t)
	for _, tool := range []string{"ip", "nft", "tc", "curl"} {
		testenv.RequireCommand(t, tool)
	}
	ctx := context.Background()
	m, err := New(ctx, Config{CIDR: testPool, Prefix: testPrefix})
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
		http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func serveIn(ns, addr string) *exec.Cmd {
	self, _ := os.Executable()
	cmd := exec.Command("ip", "netns", "exec", ns, self)
	cmd.Env = append(os.Environ(), "NBT_SERVE_ADDR="+addr)
	return cmd
}

// startExternal makes the fake internet host with an HTTP server on :8080.
func startExternal(t *testing.T) {
	t.Helper()
	run(context.Background(), "ip", "netns", "del", extNS)
	run(context.Background(), "ip", "link", "del", "nbtx0")
	for _, s := range [][]string{
		{"netns", "add", extNS},
		{"-n", extNS, "link", "set", "lo", "up"},
		{"link", "add", "nbtx0", "type", "veth", "peer", "name", "eth0", "netns", extNS},
		{"addr", "add", extHost + "/30", "dev", "nbtx0"},
		{"link", "set", "nbtx0", "up"},
		{"-n", extNS, "addr", "add", extAddr + "/30", "dev", "eth0"},
		{"-n", extNS, "link", "set", "eth0", "up"},
		{"-n", extNS, "route", "add", "default", "via", extHost},
	} {
		if err := run(context.Background(), "ip", s...); err != nil {
			t.Fatal(err)
		}
	}
	srv := serveIn(extNS, extAddr+":8080")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Kill()
		srv.Wait()
		run(context.Background(), "ip", "link", "del", "nbtx0")
		run(context.Background(), "ip", "netns", "del", extNS)
	})
	for i := 0; i < 100; i++ {
		if exec.Command("ip", "netns", "exec", extNS, "curl", "-s", "-o", "/dev/null", "-m", "1", "http://"+extAddr+":8080/").Run() == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _ := exec.Command("ip", "netns", "exec", extNS, "curl", "-sv", "-m", "1", "http://"+extAddr+":8080/").CombinedOutput()
	ps, _ := exec.Command("sh", "-c", "ps -ef | grep http.server; ip -n "+extNS+" addr").CombinedOutput()
	t.Fatalf("fake external host did not come up: %s\n%s", out, ps)
}

// reach reports whether a client in sb's namespace can fetch url.
func reach(sb Sandbox, url string) bool {
	ns := strings.TrimPrefix(sb.NetNS, netnsDir+"/")
	return exec.Command("ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-m", "2", url).Run() == nil
}

func setup(t *testing.T, m *Manager, id string, opts Options) Sandbox {
	t.Helper()
	sb, err := m.Setup(context.Background(), id, opts)
	if err != nil {
		t.Fatalf("setup %s: %v", id, err)
	}
	t.Cleanup(func() { m.Teardown(context.Background(), sb) })
	return sb
}

func TestEgressPolicy(t *testing.T) {
	m := newTestManager(t)
	startExternal(t)
	ext := "http://" + extAddr + ":8080/"
	extPrefix := netip.MustParsePrefix("198.18.0.0/15")
	for _, tc := range []struct {
		name string
		opts Options
		want bool
	}{
		{"internet", Options{Internet: true}, true},
		{"offline", Options{Internet: false}, false},
		{"denied", Options{Internet: true, DenyOut: []netip.Prefix{extPrefix}}, false},
		{"allowed while offline", Options{AllowOut: []netip.Prefix{netip.MustParsePrefix(extAddr + "/32")}}, true},
		{"allow beats deny", Options{Internet: true, AllowOut: []netip.Prefix{extPrefix}, DenyOut: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb := setup(t, m, "egress-"+strings.ReplaceAll(tc.name, " ", "-"), tc.opts)
			if got := reach(sb, ext); got != tc.want {
				t.Fatalf("reach external host with %+v: got %v, want %v", tc.opts, got, tc.want)
			}
		})
	}
}

func TestIsolation(t *testing.T) {
	m := newTestManager(t)
	a := setup(t, m, "iso-a", Options{Internet: true})
	b := setup(t, m, "iso-b", Options{Internet: true})

	// A service in B's namespace.
	nsB := strings.TrimPrefix(b.NetNS, netnsDir+"/")
	srv := serveIn(nsB, b.GuestIP.String()+":8081")
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

	// The host reaches B's service (that is how the agent talks to envd).
	bURL := fmt.Sprintf("http://%s:8081/", b.GuestIP)
	ok := false
	for i := 0; i < 100 && !ok; i++ {
		ok = exec.Command("curl", "-s", "-o", "/dev/null", "-m", "1", bURL).Run() == nil
		if !ok {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !ok {
		t.Fatal("host cannot reach a service in sandbox B")
	}
	if reach(a, bURL) {
		t.Error("sandbox A reached sandbox B")
	}
	for _, ip := range []netip.Addr{a.HostIP, b.HostIP} {
		if reach(a, fmt.Sprintf("http://%s:%d/", ip, port)) {
			t.Errorf("sandbox A reached the host's port %d on %s", port, ip)
		}
	}
	if reach(a, fmt.Sprintf("http://127.0.0.1:%d/", port)) {
		t.Error("sandbox A reached the host's loopback")
	}
}

func TestTeardownLeavesNothing(t *testing.T) {
	m := newTestManager(t)
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
}

func TestFailedSetupUnwinds(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	// A namespace of that name already exists: setup fails at its first
	// step and must leave the slot free and the existing namespace alone.
	if err := run(ctx, "ip", "netns", "add", testPrefix+"-busy"); err != nil {
		t.Fatal(err)
	}
	defer run(ctx, "ip", "netns", "del", testPrefix+"-busy")
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
}

func assertGone(t *testing.T, m *Manager, sb Sandbox) {
	t.Helper()
	if _, err := os.Stat(sb.NetNS); err == nil {
		t.Errorf("netns %s still exists", sb.NetNS)
	}
	if _, err := net.InterfaceByName(sb.HostIf); err == nil {
		t.Errorf("link %s still exists", sb.HostIf)
	}
	out, _ := exec.Command("nft", "list", "table", "inet", m.tableName()).CombinedOutput()
	if strings.Contains(string(out), fmt.Sprintf("chain sb%d ", sb.Slot)) || strings.Contains(string(out), `"`+sb.HostIf+`"`) {
		t.Errorf("nft rules of %s remain:\n%s", sb.ID, out)
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

// TestRateLimitInstalled checks the egress shaper's configuration: the
// host end's ingress goes to an IFB device with a token bucket of the
// configured rate and burst. (internal/agent's TestEgressRateLimit checks
// that it holds back a real sandbox.)
func TestRateLimitInstalled(t *testing.T) {
	m := newTestManager(t)
	sb := setup(t, m, "rate", Options{Internet: true})
	ifb := m.ifbName(sb.Slot)
	out, err := exec.Command("tc", "qdisc", "show", "dev", ifb).CombinedOutput()
	if err != nil {
		t.Fatalf("tc: %v: %s", err, out)
	}
	// 200 MiB/s is 1677.7 Mbit/s; tc prints it rounded.
	if !strings.Contains(string(out), "tbf") || !strings.Contains(string(out), "rate 1677Mbit") || !strings.Contains(string(out), "burst 100Mb") {
		t.Fatalf("egress shaper on %s: got %q, want tbf rate 1677Mbit burst 100Mb", ifb, out)
	}
	out, _ = exec.Command("tc", "filter", "show", "dev", sb.HostIf, "parent", "ffff:").CombinedOutput()
	if !strings.Contains(string(out), "mirred") || !strings.Contains(string(out), ifb) {
		t.Fatalf("no redirect from %s to %s: %q", sb.HostIf, ifb, out)
	}
	m.Teardown(context.Background(), sb)
	if _, err := net.InterfaceByName(ifb); err == nil {
		t.Fatalf("%s left after teardown", ifb)
	}
}
