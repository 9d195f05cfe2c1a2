package portfwd

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseProcNet(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 00000000:C2AF 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
   3: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 4 1
   4: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 5 1
`
	socks, err := parseProcNet(bufio.NewScanner(strings.NewReader(table)))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		ip   string
		port uint16
	}{{"127.0.0.1", 8080}, {"0.0.0.0", 49839}, {"::1", 22}, {"127.0.0.1", 80}}
	if len(socks) != len(want) {
		t.Fatalf("got %d sockets %v, want %d", len(socks), socks, len(want))
	}
	for i, w := range want {
		if socks[i].ip.String() != w.ip || socks[i].port != w.port {
			t.Errorf("socket %d: got %s:%d, want %s:%d", i, socks[i].ip, socks[i].port, w.ip, w.port)
		}
	}
}

func TestParseAddrRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "zz:1", "0100007F", "0100007F:xyz", "01007F:0050", "0100007F:10000"} {
		if _, _, err := parseAddr(in); err == nil {
			t.Errorf("parseAddr(%q) accepted garbage", in)
		}
	}
}

// TestForwardsLoopbackService runs a service on 127.0.0.1 and checks that it
// becomes reachable on the "external" address 127.0.0.2, and that the relay
// goes away with the service.
func TestForwardsLoopbackService(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	ext := net.ParseIP("127.0.0.2")
	f := New(Config{Interval: 50 * time.Millisecond, MaxInterval: 50 * time.Millisecond, Addrs: func() ([]net.IP, error) { return []net.IP{ext}, nil }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done }()

	target := net.JoinHostPort(ext.String(), strconv.Itoa(port))
	var c net.Conn
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err = net.Dial("tcp", target); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("service never reachable on %s: %v", target, err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo through relay: got %q, %v", buf, err)
	}
	c.Close()

	ln.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		still := false
		for _, p := range f.Forwarded() {
			still = still || int(p) == port
		}
		if !still {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay for closed port %d still open", port)
		}
	}
	if c, err := net.DialTimeout("tcp", target, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts after the service closed", target)
	}
}

func TestExcludedPortIsNotForwarded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	f := New(Config{Exclude: []uint16{port}, Addrs: func() ([]net.IP, error) { return []net.IP{net.ParseIP("127.0.0.3")}, nil }})
	f.scan()
	defer f.closeAll()
	for _, p := range f.Forwarded() {
		if p == port {
			t.Fatalf("excluded port %d was forwarded", port)
		}
	}
}

func TestNextWait(t *testing.T) {
	for _, tc := range []struct{ wait, most, want time.Duration }{
		{time.Second, 16 * time.Second, 2 * time.Second},
		{8 * time.Second, 16 * time.Second, 16 * time.Second},
		{16 * time.Second, 16 * time.Second, 16 * time.Second},
		{10 * time.Second, 16 * time.Second, 16 * time.Second},
	} {
		if got := nextWait(tc.wait, tc.most); got != tc.want {
			t.Errorf("nextWait(%v, %v) = %v, want %v", tc.wait, tc.most, got, tc.want)
		}
	}
	if f := New(Config{Interval: time.Minute, MaxInterval: time.Second}); f.cfg.MaxInterval != time.Minute {
		t.Errorf("MaxInterval below Interval: %v, want it raised to Interval", f.cfg.MaxInterval)
	}
	if f := New(Config{}); f.cfg.Interval != time.Second || f.cfg.MaxInterval != 16*time.Second {
		t.Errorf("defaults: %v and %v, want 1s and 16s", f.cfg.Interval, f.cfg.MaxInterval)
	}
}

// TestIdleScansSlowDown: without kicks the waits between scans double
// up to MaxInterval and stay there; a kick while a long wait runs brings
// the next scan to Interval, and the doubling starts again from it. The
// test reads the waits the schedule chooses, not the clock.
func TestIdleScansSlowDown(t *testing.T) {
	const ms = time.Millisecond
	f := New(Config{Interval: ms, MaxInterval: 8 * ms, Addrs: func() ([]net.IP, error) { return []net.IP{net.ParseIP("127.0.0.4")}, nil }})
	f.waits = make(chan time.Duration)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	next := func() time.Duration {
		t.Helper()
		select {
		case d := <-f.waits:
			return d
		case <-time.After(10 * time.Second):
			t.Fatal("the schedule chose no wait in 10 s")
			return 0
		}
	}
	for i, want := range []time.Duration{2 * ms, 4 * ms, 8 * ms, 8 * ms, 8 * ms} {
		if got := next(); got != want {
			t.Fatalf("wait %d without kicks: %v, want %v", i+1, got, want)
		}
	}
	// Run now waits 8 ms, or is about to: a kick shortens a wait longer
	// than Interval; one that finds the scan already due changes nothing.
	f.Kick()
	got := next()
	for range 100 {
		if got != 8*ms {
			break
		}
		got = next() // a scan that came before Run saw the kick
	}
	if got == ms {
		got = next() // the kick's wait, then the scan's
	}
	if got != 2*ms {
		t.Fatalf("the wait after a kick and its scan: %v, want %v (doubling again from Interval)", got, 2*ms)
	}
}
