package network

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// Ops counts the kernel work a Manager did since it was made, for tests
// and benchmarks that check that one Setup does not cost more with every
// sandbox already running. Each field only grows.
type Ops struct {
	// AddrDumps is how many times every IPv4 address of the host was
	// read (a netlink dump), and AddrsRead how many addresses those dumps
	// returned together: the host end of every running sandbox is one.
	AddrDumps, AddrsRead int64
	// NftBatches is how many nft transactions were sent, and NftObjects
	// how many rules, chains and set elements they added or deleted.
	NftBatches, NftObjects int64
	// SlotsScanned is how many address slots allocations looked at.
	SlotsScanned int64
}

// Sub is o less before: the work done between two readings.
func (o Ops) Sub(before Ops) Ops {
	return Ops{
		AddrDumps: o.AddrDumps - before.AddrDumps, AddrsRead: o.AddrsRead - before.AddrsRead,
		NftBatches: o.NftBatches - before.NftBatches, NftObjects: o.NftObjects - before.NftObjects,
		SlotsScanned: o.SlotsScanned - before.SlotsScanned,
	}
}

type opCounters struct {
	addrDumps, addrsRead, nftBatches, nftObjects, slotsScanned atomic.Int64
}

// nft counts one transaction of objects rules, chains and elements.
func (c *opCounters) nft(objects int) {
	c.nftBatches.Add(1)
	c.nftObjects.Add(int64(objects))
}

// Ops returns the counts of the kernel work m did so far. Safe for
// concurrent use.
func (m *Manager) Ops() Ops {
	return Ops{
		AddrDumps: m.ops.addrDumps.Load(), AddrsRead: m.ops.addrsRead.Load(),
		NftBatches: m.ops.nftBatches.Load(), NftObjects: m.ops.nftObjects.Load(),
		SlotsScanned: m.ops.slotsScanned.Load(),
	}
}

// neighPerSandbox is how many IPv4 neighbour entries one sandbox holds:
// the host end learns its peer, and in the shared-address topology the
// NAT namespace learns the host end and the guest. The kernel's table is
// one for all namespaces.
const neighPerSandbox = 3

// raiseNeighbourTable makes the host's IPv4 neighbour (ARP) table hold the
// entries of slots sandboxes: past gc_thresh3 (1024 by default, about 340
// sandboxes) the kernel refuses new ones ("neighbour table overflow") and
// the sandboxes past it lose their network. The thresholds are raised to
// fit the pool next to what the host had, never lowered; they are maxima,
// memory goes only to entries that exist.
func raiseNeighbourTable(slots int, log *slog.Logger) error {
	const dir = "/proc/sys/net/ipv4/neigh/default/"
	n := slots * neighPerSandbox
	// gc_thresh1: below it entries are never collected; 2: collected
	// after 5 s; 3: the hard maximum.
	for _, k := range []struct {
		name string
		want int
	}{{"gc_thresh1", n / 2}, {"gc_thresh2", n + 512}, {"gc_thresh3", n + 1024}} {
		b, err := os.ReadFile(dir + k.name)
		if err != nil {
			if os.IsNotExist(err) {
				continue // no IPv4 neighbour table to size
			}
			return fmt.Errorf("read %s: %w", k.name, err)
		}
		have, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || have >= k.want {
			continue
		}
		if err := os.WriteFile(dir+k.name, []byte(strconv.Itoa(k.want)), 0o644); err != nil {
			return fmt.Errorf("raise neighbour table %s to %d: %w", k.name, k.want, err)
		}
		log.Info("raised the neighbour table size for the sandboxes", "sysctl", "net.ipv4.neigh.default."+k.name, "from", have, "to", k.want)
	}
	return nil
}
