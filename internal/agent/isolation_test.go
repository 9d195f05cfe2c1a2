package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/agentpb"
)

// fakeDenied are addresses in ranges the default egress deny list blocks.
// The fake outside host answers on each of them too, and they are routed
// to it only for traffic from the tests' pool (a policy-routing rule and
// table of the tests' own), so the host's own routing is untouched and a
// blocked probe is blocked by the rules, not by a missing route.
var fakeDenied = []struct{ name, addr string }{
	{"metadata", "169.254.169.254"},
	{"10/8", "10.254.77.7"},
	{"172.16/12", "172.31.77.7"},
	{"192.168/16", "192.168.254.7"},
	{"100.64/10", "100.127.77.7"},
}

const extTable = "4214" // routing table and rule priority of the fake hosts

// startExternal makes the fake outside host: a namespace of its own
// behind a veth at extAddr (and every fakeDenied address), serving "ok" on
// :8080. It returns the URL of its public address.
func startExternal(t *testing.T) string {
	t.Helper()
	run := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	cleanup := func() {
		run("rule", "del", "priority", extTable)
		run("route", "flush", "table", extTable)
		run("link", "del", extLink)
		run("netns", "del", extNS)
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
		{"rule", "add", "priority", extTable, "from", testCIDR, "lookup", extTable},
	}
	for _, d := range fakeDenied {
		steps = append(steps,
			[]string{"-n", extNS, "addr", "add", d.addr + "/32", "dev", "eth0"},
			[]string{"route", "add", d.addr + "/32", "via", extAddr, "dev", extLink, "table", extTable})
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			cleanup()
			t.Fatal(err)
		}
	}
	self, _ := os.Executable()
	srv := exec.Command("ip", "netns", "exec", extNS, self)
	srv.Env = append(os.Environ(), "NBA_SERVE_ADDR=:8080")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Kill()
		srv.Wait()
		cleanup()
	})
	url := "http://" + extAddr + ":8080/"
	for range 200 {
		if exec.Command("ip", "netns", "exec", extNS, "/bin/busybox", "wget", "-q", "-O", "/dev/null", url).Run() == nil {
			return url
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("fake external host did not come up")
	return ""
}

// treeHash hashes the names, modes and contents of every file under dir.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v %d\n", p, info.Mode(), info.Size())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestIsolation checks what one sandbox cannot do to others or the host:
// reach another sandbox or the agent's port, reach the outside when its
// internet is off, take others down by running out of memory or disk, or
// change its template.
// probe is one reachability check of reachProbes.
type probe struct {
	from *agentpb.Sandbox
	url  string
	want bool   // reachable
	why  string // what it checks
}

// reachProbes runs busybox wget in each probe's sandbox (envd token
// token) and fails t for every probe whose reachability is not what it
// wants. (busybox's own -T segfaults: timeout(1) bounds it instead.)
// Probes run in parallel: a blocked one takes its whole timeout.
func reachProbes(t *testing.T, ta *testAgent, token string, probes []probe) {
	var wg sync.WaitGroup
	for _, p := range probes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, code, err := sh(ctx, ta.process(p.from.Id, token, ""), "timeout 3 wget -q -O- "+p.url+" 2>&1")
			if err != nil {
				t.Errorf("%s: wget %s: %v", p.why, p.url, err)
				return
			}
			if got := code == 0; got != p.want {
				t.Errorf("%s: reached %s from %s: %v (%q), want %v", p.why, p.url, p.from.Id, got, out, p.want)
			}
		})
	}
	wg.Wait()
}

func TestIsolation(t *testing.T) {
	h := newTestHost(t)
	ext := startExternal(t)
	// The agent listens on every address, so that its port is there to be
	// reached from the sandboxes' gateways if the rules let them.
	ta := h.startAgent(t, "0.0.0.0:0", nil)
	_, agentPort, _ := net.SplitHostPort(ta.addr)

	tpl, err := ta.templates.Ensure(context.Background(), "minimal")
	if err != nil {
		t.Fatal(err)
	}
	before := treeHash(t, tpl)

	var (
		wg                    sync.WaitGroup
		offline, online, oom  *agentpb.Sandbox
		offlineCfg, onlineCfg = &agentpb.SandboxConfig{DiskBytes: 64 << 20}, &agentpb.SandboxConfig{Internet: true}
	)
	var errs [3]error
	wg.Go(func() { offline, errs[0] = ta.tryCreate(offlineCfg) })
	wg.Go(func() { online, errs[1] = ta.tryCreate(onlineCfg) })
	wg.Go(func() { oom, errs[2] = ta.tryCreate(&agentpb.SandboxConfig{MemoryMb: 128}) })
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatalf("create: %v", err)
	}
	pcOff := ta.process(offline.Id, "", "")
	pcOn := ta.process(online.Id, "", "")
	pcRoot := ta.process(online.Id, "", "root")

	t.Run("network", func(t *testing.T) {
		// The agent reaches both sandboxes (with its marked sockets) and
		// the agent's port is open on their gateways' addresses.
		for _, sb := range []*agentpb.Sandbox{offline, online} {
			if code, _ := httpGet(t, markedClient(), fmt.Sprintf("http://%s:%d/health", sb.Address, EnvdPort)); code != http.StatusNoContent {
				t.Fatalf("a marked socket cannot reach %s's envd: %d", sb.Id, code)
			}
			gw := netip.MustParseAddr(sb.Address).Prev().String()
			if code, _ := httpGet(t, http.DefaultClient, "http://"+net.JoinHostPort(gw, agentPort)+"/health"); code != http.StatusOK {
				t.Fatalf("agent not reachable on %s from the host: %d", gw, code)
			}
		}
		hostIP := hostAddress(t)
		probes := []probe{
			{online, ext, true, "internet on (the control: the fake host answers)"},
			{offline, ext, false, "internet off"},
			{online, "http://" + net.JoinHostPort(hostIP.String(), agentPort) + "/health", false, "the host's own address"},
		}
		for _, d := range fakeDenied {
			probes = append(probes, probe{online, "http://" + d.addr + ":8080/", false, "internet on, " + d.name})
		}
		for _, pair := range [][2]*agentpb.Sandbox{{offline, online}, {online, offline}} {
			from, to := pair[0], pair[1]
			probes = append(probes, probe{from, fmt.Sprintf("http://%s:%d/health", to.Address, EnvdPort), false, "another sandbox"})
			for _, sb := range []*agentpb.Sandbox{offline, online} {
				gw := netip.MustParseAddr(sb.Address).Prev().String()
				probes = append(probes, probe{from, "http://" + net.JoinHostPort(gw, agentPort) + "/health", false, "the agent's port"})
			}
		}
		reachProbes(t, ta, "", probes)
	})

	t.Run("allow_out cannot open the deny list", func(t *testing.T) {
		names := []string{hostAddress(t).String(), netip.MustParseAddr(online.Address).Prev().String(), offline.Address}
		for _, d := range fakeDenied {
			names = append(names, d.addr)
		}
		for _, a := range names {
			_, err := ta.tryCreate(&agentpb.SandboxConfig{Internet: true, AllowOut: []string{a}})
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Errorf("create with allow_out %s: got %v, want invalid_argument", a, err)
			}
		}
	})

	t.Run("local processes cannot reach envd", func(t *testing.T) {
		// A plain socket of any local process: dropped by the output
		// chain. The agent's own (marked) traffic works: the sandbox
		// answers through the agent's proxy.
		addr := net.JoinHostPort(online.Address, fmt.Sprint(EnvdPort))
		if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			c.Close()
			t.Fatalf("an unmarked local socket connected to %s", addr)
		}
		mustSh(t, pcOn, "echo still reachable through the agent")
	})

	t.Run("spoofed source", func(t *testing.T) {
		spoofCheck(t, ta.lookup(online.Id).net)
	})

	t.Run("disk full", func(t *testing.T) {
		out := mustSh(t, pcOff, "dd if=/dev/zero of=/home/user/fill bs=1M count=200 2>&1; echo rc=$?")
		if !strings.Contains(out, "No space left on device") || strings.Contains(out, "rc=0") {
			t.Errorf("filling a 64 MiB disk: %q, want ENOSPC", out)
		}
		// The other sandbox writes as usual.
		mustSh(t, pcOn, "dd if=/dev/zero of=/home/user/data bs=1M count=16 2>/dev/null && sync && ls -l /home/user/data")
		// And so does the full one once it frees space.
		mustSh(t, pcOff, "rm /home/user/fill && echo fine > /home/user/after")
	})

	t.Run("template unchanged", func(t *testing.T) {
		newPasswd := "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nintruder:x:0:0::/:/bin/sh\n"
		mustSh(t, pcRoot, fmt.Sprintf("printf '%s' > /etc/passwd && rm /bin/vi && echo x > /usr/bin/envd.new", strings.ReplaceAll(newPasswd, "\n", `\n`)))
		if out := mustSh(t, pcRoot, "cat /etc/passwd"); out != newPasswd {
			t.Errorf("sandbox does not see its own write: %q", out)
		}
		b, _ := os.ReadFile(filepath.Join(tpl, "etc/passwd"))
		if bytes.Contains(b, []byte("intruder")) {
			t.Error("the template's /etc/passwd changed")
		}
		if after := treeHash(t, tpl); after != before {
			t.Error("the template directory changed")
		}
		// Other sandboxes see the template as it was.
		if out := mustSh(t, pcOff, "cat /etc/passwd; ls /bin/vi"); strings.Contains(out, "intruder") || !strings.Contains(out, "/bin/vi") {
			t.Errorf("another sandbox sees the change: %q", out)
		}
	})

	t.Run("out of memory", func(t *testing.T) {
		// 300 MiB in a 128 MiB sandbox: busybox dd allocates its block
		// and fills it. The host's memory cgroup kills the sandbox; the
		// agent finds it dead, cleans it up and the others go on.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan struct{})
		go func() {
			// The request hangs when the sandbox dies (its network stack
			// dies with it); the cancel ends it.
			defer close(done)
			out, code, err := sh(ctx, ta.process(oom.Id, "", ""), "dd if=/dev/zero of=/dev/null bs=300M count=1 2>&1")
			t.Logf("dd in the 128 MiB sandbox: exit %d, err %v, output %q", code, err, out)
		}()
		ta.waitGone(t, oom.Id, time.Minute)
		cancel()
		<-done
		mustSh(t, pcOff, "echo still here")
		mustSh(t, pcOn, "echo still here")
	})

	ta.destroyRPC(t, offline.Id)
	ta.destroyRPC(t, online.Id)
	assertClean(t, h.dataDir)
}
