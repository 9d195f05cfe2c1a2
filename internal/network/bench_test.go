package network

import (
	"context"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// BenchmarkSetup measures Setup and Teardown of one sandbox network
// (namespaces, veths, addresses, rules, shaper), the network's share of an
// agent's create and destroy, in each topology: "unique" (the guest has
// its pool address) and "shared" (the same guest address for all, behind
// a NAT namespace per sandbox).
func BenchmarkSetup(b *testing.B) {
	for _, tc := range []struct {
		name   string
		shared bool
	}{{"unique", false}, {"shared", true}} {
		b.Run(tc.name, func(b *testing.B) {
			m := newTestManager(b, func(c *Config) { c.SharedGuestAddress = tc.shared })
			ctx := context.Background()
			var setup, teardown time.Duration
			for range b.N {
				start := time.Now()
				sb, err := m.Setup(ctx, "bench", Options{Internet: true})
				if err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if err := m.Teardown(ctx, sb); err != nil {
					b.Fatal(err)
				}
				setup += mid.Sub(start)
				teardown += time.Since(mid)
			}
			b.ReportMetric(float64(setup.Microseconds())/float64(b.N)/1000, "setup-ms")
			b.ReportMetric(float64(teardown.Microseconds())/float64(b.N)/1000, "teardown-ms")
		})
	}
}

// BenchmarkPrimitives measures the two kernel objects the shared topology
// adds per sandbox, alone: a named namespace (create, delete) and a veth
// pair into it (create, delete).
func BenchmarkPrimitives(b *testing.B) {
	newTestManager(b) // root and the netns directory
	b.Run("netns", func(b *testing.B) {
		var mk, rm time.Duration
		for range b.N {
			start := time.Now()
			if err := newNamedNS(testPrefix + "-bench-ns"); err != nil {
				b.Fatal(err)
			}
			mid := time.Now()
			if err := deleteNamedNS(testPrefix + "-bench-ns"); err != nil {
				b.Fatal(err)
			}
			mk += mid.Sub(start)
			rm += time.Since(mid)
		}
		b.ReportMetric(float64(mk.Microseconds())/float64(b.N)/1000, "create-ms")
		b.ReportMetric(float64(rm.Microseconds())/float64(b.N)/1000, "delete-ms")
	})
	b.Run("veth", func(b *testing.B) {
		var ns namespace
		if err := ns.create(testPrefix + "-bench-veth"); err != nil {
			b.Fatal(err)
		}
		defer func() { ns.close(); deleteNamedNS(testPrefix + "-bench-veth") }()
		root := &netlink.Handle{}
		var mk, rm time.Duration
		for range b.N {
			start := time.Now()
			veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: testPrefix + "hbench"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns.fd))}
			if err := root.LinkAdd(veth); err != nil {
				b.Fatal(err)
			}
			mid := time.Now()
			if err := deleteLink(root, testPrefix+"hbench"); err != nil {
				b.Fatal(err)
			}
			mk += mid.Sub(start)
			rm += time.Since(mid)
		}
		b.ReportMetric(float64(mk.Microseconds())/float64(b.N)/1000, "create-ms")
		b.ReportMetric(float64(rm.Microseconds())/float64(b.N)/1000, "delete-ms")
	})
}
