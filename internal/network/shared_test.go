package network

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func sharedManager(t *testing.T, edit ...func(*Config)) *Manager {
	t.Helper()
	return newTestManager(t, append([]func(*Config){func(c *Config) { c.SharedGuestAddress = true }}, edit...)...)
}

// TestSharedGuestAddress checks the point of the shared topology: two
// sandboxes with the same guest address, each with a service on it, are
// each reached at their own exposed address (by the agent only), cannot
// reach each other, and reach the outside.
func TestSharedGuestAddress(t *testing.T) {
	m := sharedManager(t)
	startExternal(t)
	a := setup(t, m, "same-a", Options{Internet: true})
	b := setup(t, m, "same-b", Options{Internet: true})
	if a.GuestIP != GuestAddr || b.GuestIP != GuestAddr {
		t.Fatalf("guest addresses %s and %s, want both %s", a.GuestIP, b.GuestIP, GuestAddr)
	}
	if a.Addr() == b.Addr() || !m.pool.Contains(a.Addr()) || !m.pool.Contains(b.Addr()) {
		t.Fatalf("exposed addresses %s and %s: want two different ones in %s", a.Addr(), b.Addr(), m.pool)
	}
	for _, sb := range []Sandbox{a, b} {
		srv := serveIn(nsName(sb), GuestAddr.String()+":8081", sb.ID)
		srv.Stderr = os.Stderr
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	}
	marked := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{Control: MarkControl}).DialContext, DisableKeepAlives: true}}
	get := func(sb Sandbox) (string, error) {
		resp, err := marked.Get("http://" + net.JoinHostPort(sb.Addr().String(), "8081") + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}
	for _, sb := range []Sandbox{a, b} {
		var got string
		var err error
		for range 100 {
			if got, err = get(sb); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil || got != sb.ID {
			t.Errorf("the agent at %s: got %q, %v; want %q", sb.Addr(), got, err, sb.ID)
		}
		if c, err := (&net.Dialer{Timeout: time.Second}).Dial("tcp", net.JoinHostPort(sb.Addr().String(), "8081")); err == nil {
			c.Close()
			t.Errorf("an unmarked local socket reached %s at %s", sb.ID, sb.Addr())
		}
	}
	for _, p := range [][2]Sandbox{{a, b}, {b, a}} {
		if reach(p[0], "http://"+net.JoinHostPort(p[1].Addr().String(), "8081")+"/") {
			t.Errorf("%s reached %s at its exposed address %s", p[0].ID, p[1].ID, p[1].Addr())
		}
	}

	// Each goes out through the NAT with its exposed address as the
	// source: the host's anti-spoofing drops anything else from the link
	// (the outside then sees the host's masquerade).
	nsh, err := netns.GetFromName(extNS)
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()
	var pc net.PacketConn
	if err := onThreadIn(nsh, func() (err error) {
		pc, err = net.ListenPacket("udp4", extAddr+":9998")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, sb := range []Sandbox{a, b} {
		in, err := netns.GetFromPath(sb.NetNS)
		if err != nil {
			t.Fatal(err)
		}
		err = onThreadIn(in, func() error {
			c, err := net.Dial("udp4", extAddr+":9998")
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte(sb.ID))
			return err
		})
		in.Close()
		if err != nil {
			t.Fatalf("send from %s: %v", sb.ID, err)
		}
		pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 100)
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("datagram of %s: %v", sb.ID, err)
		}
		if string(buf[:n]) != sb.ID {
			t.Errorf("datagram %q, want %q", buf[:n], sb.ID)
		}
	}
}

// TestNATRemovedWithNamespace checks that a shared-address sandbox's NAT
// (its namespace, links and nft table) is there while it runs and gone
// after Teardown, with nothing of it left on the host; and that a NAT
// namespace left alone by a crash is found by Leftovers and removed.
func TestNATRemovedWithNamespace(t *testing.T) {
	m := sharedManager(t)
	ctx := context.Background()
	sb, err := m.Setup(ctx, "nat-gone", Options{Internet: true})
	if err != nil {
		t.Fatal(err)
	}
	nat, err := netns.GetFromPath(sb.NATNS)
	if err != nil {
		t.Fatalf("open the nat namespace: %v", err)
	}
	h, err := netlink.NewHandleAt(nat)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{natGuestIf, natHostIf} {
		if _, err := h.LinkByName(l); err != nil {
			t.Errorf("link %s in the nat namespace: %v", l, err)
		}
	}
	h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(nat)))
	if err != nil {
		t.Fatal(err)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ch := range chains {
		names = append(names, ch.Name)
	}
	slices.Sort(names)
	if want := []string{"forward", "input", "postrouting", "prerouting"}; !slices.Equal(names, want) {
		t.Errorf("nat namespace chains %v, want %v", names, want)
	}
	nat.Close()
	if err := m.Teardown(ctx, sb); err != nil {
		t.Fatal(err)
	}
	assertGone(t, m, sb)
	if ids, err := m.Leftovers(); err != nil || slices.Contains(ids, sb.ID) {
		t.Errorf("leftovers after teardown: %v, %v", ids, err)
	}

	// A crash that removed the sandbox's namespace but not its NAT one.
	sb2, err := m.Setup(ctx, "nat-crash", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Teardown(ctx, sb2)
	if err := deleteNamedNS(nsName(sb2)); err != nil {
		t.Fatal(err)
	}
	ids, err := m.Leftovers()
	if err != nil || !slices.Contains(ids, sb2.ID) {
		t.Fatalf("leftovers with only a nat namespace: %v, %v; want %s among them", ids, err, sb2.ID)
	}
	if err := m.Teardown(ctx, Sandbox{ID: sb2.ID, Slot: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sb2.NATNS); err == nil {
		t.Errorf("nat namespace %s left after the leftover's teardown", sb2.NATNS)
	}
}

// TestRebuildKeepsTopology checks that Rebuild makes a sandbox's network
// again in the topology it was built with, whatever the manager's own
// setting: a paused sandbox's netstack has the address it was saved with.
func TestRebuildKeepsTopology(t *testing.T) {
	ctx := context.Background()
	unique := newTestManager(t)
	old := setup(t, unique, "rebuild-old", Options{})
	if err := unique.Release(ctx, old); err != nil {
		t.Fatal(err)
	}
	unique.cfg.SharedGuestAddress = true // the operator switched it on
	got, err := unique.Rebuild(ctx, old, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got.NATNS != "" || got.GuestIP != old.GuestIP {
		t.Errorf("rebuilt a unique-address sandbox as %+v, want %+v", got, old)
	}
	shared := setup(t, unique, "rebuild-new", Options{})
	if err := unique.Release(ctx, shared); err != nil {
		t.Fatal(err)
	}
	unique.cfg.SharedGuestAddress = false
	got, err = unique.Rebuild(ctx, shared, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got != shared {
		t.Errorf("rebuilt a shared-address sandbox as %+v, want %+v", got, shared)
	}
}

// assertIPv6Off checks that IPv6 is off on links of the namespace at path.
func assertIPv6Off(t *testing.T, path string, links ...string) {
	t.Helper()
	nsh, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()
	for _, l := range links {
		var b []byte
		if err := onThreadIn(nsh, func() (err error) {
			b, err = os.ReadFile("/proc/sys/net/ipv6/conf/" + l + "/disable_ipv6")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(b)) != "1" {
			t.Errorf("IPv6 on %s in %s: disable_ipv6=%q, want 1", l, path, b)
		}
	}
}
