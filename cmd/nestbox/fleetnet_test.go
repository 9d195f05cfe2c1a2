package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"nestbox.dev/internal/testenv"
)

// fleetNetwork is a private network for a fleet test: a bridge on the
// test's host with an address of its own (where the control planes
// listen), and one network namespace per agent, each joined to the
// bridge by a veth pair and given its own address, as hosts on one LAN.
type fleetNetwork struct {
	t      testing.TB
	bridge string
	// hostIP is the bridge's address: control planes listen there and
	// the namespaces reach it.
	hostIP string
	// ns[k] is namespace k's name (under /var/run/netns), ip[k] its
	// address.
	ns, ip []string
}

// fleetUplink is the name of each namespace's end of its veth pair.
const fleetUplink = "uplink"

// newFleetNetwork makes a bridge named after tag (a few letters, unique
// among the tests) with subnet.1/24 (subnet is three octets, "10.227.0"),
// and n namespaces with subnet.11, .12, ... At the end of the test it
// removes them all; leftovers of an earlier run that died are removed
// first.
func newFleetNetwork(t testing.TB, tag, subnet string, n int) *fleetNetwork {
	t.Helper()
	testenv.RequireCommand(t, "ip")
	testenv.RequireCommand(t, "nsenter")
	f := &fleetNetwork{t: t, bridge: "nbt" + tag + "br", hostIP: subnet + ".1"}
	for k := range n {
		f.ns = append(f.ns, fmt.Sprintf("nestbox-test-%s-%d", tag, k))
		f.ip = append(f.ip, fmt.Sprintf("%s.%d", subnet, 11+k))
	}
	f.remove()
	t.Cleanup(f.remove)
	f.run("ip", "link", "add", f.bridge, "type", "bridge")
	f.run("ip", "addr", "add", f.hostIP+"/24", "dev", f.bridge)
	f.run("ip", "link", "set", f.bridge, "up")
	for k, ns := range f.ns {
		veth := f.veth(k)
		f.run("ip", "netns", "add", ns)
		f.run("ip", "link", "add", veth, "type", "veth", "peer", "name", fleetUplink, "netns", ns)
		f.run("ip", "link", "set", veth, "master", f.bridge, "up")
		f.run("ip", "-n", ns, "addr", "add", f.ip[k]+"/24", "dev", fleetUplink)
		f.run("ip", "-n", ns, "link", "set", fleetUplink, "up")
		f.run("ip", "-n", ns, "link", "set", "lo", "up")
	}
	return f
}

func (f *fleetNetwork) run(name string, args ...string) {
	f.t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		f.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// inNS runs a command in namespace k.
func (f *fleetNetwork) inNS(k int, name string, args ...string) {
	f.t.Helper()
	f.run("nsenter", append([]string{"--net=/var/run/netns/" + f.ns[k], "--", name}, args...)...)
}

// cutTable is the nft table that cut adds in a namespace.
const cutTable = "nestbox_test_cut"

// cut drops every packet in and out of namespace k's uplink, in its own
// namespace (a filter ahead of everything else there), as a failed cable
// or switch port would: the agent keeps running, its sandboxes too, and
// nothing reaches it or leaves it. Its own traffic to its sandboxes goes
// on (other links).
func (f *fleetNetwork) cut(k int) {
	f.t.Helper()
	rules := fmt.Sprintf(`table inet %s {
	chain cut_in { type filter hook input priority -400; policy accept; iifname %q drop; }
	chain cut_out { type filter hook output priority -400; policy accept; oifname %q drop; }
	chain cut_forward { type filter hook forward priority -400; policy accept; iifname %q drop; oifname %q drop; }
}
`, cutTable, fleetUplink, fleetUplink, fleetUplink, fleetUplink)
	cmd := exec.Command("nsenter", "--net=/var/run/netns/"+f.ns[k], "--", "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		f.t.Fatalf("cut namespace %s: %v\n%s", f.ns[k], err, out)
	}
}

// restore undoes cut.
func (f *fleetNetwork) restore(k int) {
	f.t.Helper()
	f.inNS(k, "nft", "delete", "table", "inet", cutTable)
}

// veth is the host's end of namespace k's veth pair.
func (f *fleetNetwork) veth(k int) string {
	return fmt.Sprintf("%s%d", strings.TrimSuffix(f.bridge, "br"), k)
}

// remove deletes the veth pairs, the namespaces and the bridge; what is
// not there is no error. The pairs go first, by name: a deleted
// namespace is torn down by the kernel in the background, and its links
// with it, which a test run at once after might meet.
func (f *fleetNetwork) remove() {
	for k, ns := range f.ns {
		exec.Command("ip", "link", "del", f.veth(k)).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	}
	exec.Command("ip", "link", "del", f.bridge).Run()
}
