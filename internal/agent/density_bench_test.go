package agent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"nestbox.dev/internal/driver/gvisor"
	"nestbox.dev/internal/proto/agentpb"
)

// densityCIDR is the density benchmark's pool: room for 2048 sandboxes,
// apart from every other test's range.
const densityCIDR = "10.232.0.0/19"

// BenchmarkDensity creates NESTBOX_DENSITY_N (default 20) idle sandboxes
// of NESTBOX_DENSITY_TEMPLATE (default base, 256 MiB limit) one after
// another, in steps (1, then every NESTBOX_DENSITY_STEP, default 50 or N/4
// when smaller, up to N). After each step it prints a row: the step's
// create p50/p99 and rate, MemAvailable, what each idle sandbox costs the
// host (MemAvailable since the start over the count), the RSS and PSS per
// sandbox of its processes (runsc-sandbox: the sentry, gofer, other) from
// /proc/<pid>/smaps_rollup, and the agent's external operations per create
// (runsc processes, addresses read, nft objects, layer stats), and the
// CPU use over 5 s with nothing being created (idlecpu%: the whole host,
// other users included, of all cores; sbxcpu%: the sandboxes' cgroups, of
// one core; agent%: the agent, of one core). NESTBOX_DENSITY_QUIET=1 turns
// the crash monitor and the metrics sampler off, to tell their cost from
// the sandboxes' own; NESTBOX_DENSITY_RUNSC_FLAGS adds runsc flags. Then
// it destroys them all and checks that the host is as it was. Run it with
// -benchtime 1x (make bench-density N=...).
func BenchmarkDensity(b *testing.B) {
	n := envInt("NESTBOX_DENSITY_N", 20)
	stepSize := envInt("NESTBOX_DENSITY_STEP", min(50, max(1, n/4)))
	tpl := os.Getenv("NESTBOX_DENSITY_TEMPLATE")
	if tpl == "" {
		tpl = "base"
	}
	h := newTestHost(b)
	ta := h.startAgent(b, "", func(c *Config) {
		c.NetworkCIDR = densityCIDR
		c.MonitorInterval = 0 // the defaults: the background work as in production
		if os.Getenv("NESTBOX_DENSITY_QUIET") != "" {
			// Without the crash monitor and the sampler: what idle
			// sandboxes cost on their own.
			c.MonitorInterval, c.SampleInterval = time.Hour, time.Hour
		}
		c.TemplateCacheDir = os.Getenv("NESTBOX_TEMPLATE_CACHE_DIR")
		if flags := strings.Fields(os.Getenv("NESTBOX_DENSITY_RUNSC_FLAGS")); len(flags) > 0 {
			// runsc flags to try (e.g. --systrap-disable-fast-path).
			d, err := gvisor.New(gvisor.Config{Runsc: c.Runsc, Root: filepath.Join(c.DataDir, "runsc"),
				CgroupParent: c.CgroupParent, ExtraFlags: flags, Logger: c.Logger})
			if err != nil {
				b.Fatal(err)
			}
			c.Driver = d
		}
	})
	// The template is built first, outside a create's deadline: a base
	// build on a busy 2-core machine can take longer than it.
	if _, err := ta.templates.Ensure(context.Background(), tpl); err != nil {
		b.Fatal(err)
	}
	ta.destroyRPC(b, ta.create(b, &agentpb.SandboxConfig{Template: tpl}).Id)
	steps := []int{1}
	for s := stepSize; s < n; s += stepSize {
		if s > 1 {
			steps = append(steps, s)
		}
	}
	if n > 1 {
		steps = append(steps, n)
	}
	for range b.N {
		time.Sleep(2 * time.Second)
		baseline := hostSnapshot(h.dataDir)
		total, before := meminfo(b)
		fmt.Printf("density: %d x %s (256 MiB limit), MemTotal %d MiB, MemAvailable %d MiB at the start\n", n, tpl, total>>20, before>>20)
		fmt.Printf("%6s %8s %8s %9s %8s %8s %8s %8s %9s %11s %11s %11s %11s %7s %7s %8s %8s %8s %8s\n",
			"count", "p50-ms", "p99-ms", "creates/s", "idlecpu%", "sbxcpu%", "agent%", "avail-MiB", "MiB/sbx", "sentry-pss", "gofer-pss", "other-pss", "rss/sbx", "thr/sbx", "agentfd",
			"runsc/c", "addrs/c", "nft/c", "stat/c")
		var ids []string
		var all []time.Duration
		for _, target := range steps {
			var ds []time.Duration
			ops0 := ta.opCounts()
			start := time.Now()
			for len(ids) < target {
				t0 := time.Now()
				sb, err := ta.tryCreate(&agentpb.SandboxConfig{Template: tpl, TimeoutSeconds: 3600})
				if err != nil {
					// Which host limit it met, if it was one.
					b.Fatalf("create %d: %v\nsandboxes' pids cgroup: %s of %s; /proc/loadavg: %s", len(ids)+1, err,
						readTrim("/sys/fs/cgroup/pids"+testCgroup+"/pids.current"), readTrim("/sys/fs/cgroup/pids"+testCgroup+"/pids.max"),
						readTrim("/proc/loadavg"))
				}
				ds = append(ds, time.Since(t0))
				ids = append(ids, sb.Id)
			}
			elapsed := time.Since(start)
			ops := ta.opCounts().sub(ops0)
			all = append(all, ds...)
			time.Sleep(2 * time.Second) // let the new sandboxes go idle
			// What the idle sandboxes and the agent's background work
			// cost the CPU, with nothing being created.
			host0, self0 := cpuTicks()
			sbx0, t0 := sandboxesCPU(), time.Now()
			time.Sleep(5 * time.Second)
			host1, self1 := cpuTicks()
			sbxCPU := 100 * float64(sandboxesCPU()-sbx0) / float64(time.Since(t0))
			idleCPU := 100 * float64(host1.busy-host0.busy) / float64(host1.total-host0.total)
			agentCPU := 100 * float64(self1-self0) / float64(host1.total-host0.total) * float64(runtime.NumCPU())
			_, avail := meminfo(b)
			procs := sandboxProcesses(h.dataDir)
			k := float64(len(ids))
			c := float64(len(ds))
			var runscOps int64
			for cmd, v := range ops.runsc {
				if cmd != "events" && cmd != "state" { // events: the sampler; state: also the monitor
					runscOps += v
				}
			}
			runscOps += ops.runsc["state"] // Create asks runsc state once
			fmt.Printf("%6d %8.0f %8.0f %9.2f %8.1f %8.1f %8.1f %8d %9.1f %11.1f %11.1f %11.1f %11.1f %7.1f %7d %8.1f %8.1f %8.1f %8.1f\n",
				len(ids), pct(ds, 50), pct(ds, 99), c/elapsed.Seconds(), idleCPU, sbxCPU, agentCPU, avail>>20, float64(before-avail)/k/(1<<20),
				procs["sentry"].pss/k/1024, procs["gofer"].pss/k/1024, procs["other"].pss/k/1024,
				(procs["sentry"].rss+procs["gofer"].rss+procs["other"].rss)/k/1024,
				float64(procs["sentry"].threads+procs["gofer"].threads+procs["other"].threads)/k, openFDs(),
				float64(runscOps)/c, float64(ops.net.AddrsRead)/c, float64(ops.net.NftObjects)/c, float64(ops.layerStats)/c)
			if target == n {
				bg := ops.runsc["events"]
				fmt.Printf("at %d: background runsc events (the metrics sampler) during the last step: %d in %.0f s\n", n, bg, elapsed.Seconds())
				for _, name := range []string{"sentry", "gofer", "other"} {
					p := procs[name]
					fmt.Printf("  %-6s per sandbox: rss %.1f MiB, pss %.1f MiB (anon %.1f, file %.1f, shmem %.1f), %d processes\n",
						name, p.rss/k/1024, p.pss/k/1024, p.pssAnon/k/1024, p.pssFile/k/1024, p.pssShmem/k/1024, p.count)
				}
				b.ReportMetric(float64(before-avail)/k/(1<<20), "MiB/sandbox")
				b.ReportMetric(c/elapsed.Seconds(), "creates/s@N")
			}
		}
		reportPercentiles(b, all)
		// Every capsule answers an exec at N: one at a time, timed.
		var execs []time.Duration
		for _, id := range ids {
			t0 := time.Now()
			mustSh(b, ta.process(id, "", "root"), "true")
			execs = append(execs, time.Since(t0))
		}
		fmt.Printf("an exec of true in each of the %d: p50 %.1f ms, p99 %.1f ms, all answered\n", len(ids), pct(execs, 50), pct(execs, 99))
		// Destroy all of them, then the host must be as it was.
		start := time.Now()
		for _, id := range ids {
			ta.destroyRPC(b, id)
		}
		fmt.Printf("destroyed %d in %.1f s (%.2f/s)\n", len(ids), time.Since(start).Seconds(), float64(len(ids))/time.Since(start).Seconds())
		assertClean(b, h.dataDir)
		if after := hostSnapshot(h.dataDir); !slices.Equal(after, baseline) {
			b.Errorf("host changed:\n before %v\n after  %v", baseline, after)
		}
		time.Sleep(2 * time.Second)
		_, end := meminfo(b)
		fmt.Printf("MemAvailable after destroying all: %d MiB (%+d MiB against the start)\n", end>>20, (end-before)>>20)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func pct(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[(len(s)-1)*p/100]) / float64(time.Millisecond)
}

// procUse sums the memory (kB) and threads of processes of one kind.
type procUse struct {
	count, threads                       int
	rss, pss, pssAnon, pssFile, pssShmem float64
}

// sandboxProcesses sums, by kind, the processes whose command line names
// the data dir (runsc's sandboxes and gofers name their state root):
// "sentry" (runsc-sandbox), "gofer" and "other".
func sandboxProcesses(dataDir string) map[string]procUse {
	out := map[string]procUse{}
	self := strconv.Itoa(os.Getpid())
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if filepath.Base(d) == self {
			continue
		}
		cmd, err := os.ReadFile(d + "/cmdline")
		if err != nil || !bytes.Contains(cmd, []byte(dataDir)) {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		kind := "other"
		switch {
		case strings.Contains(args[0], "runsc-sandbox"):
			kind = "sentry"
		case slices.Contains(args, "gofer") || strings.Contains(args[0], "gofer"):
			kind = "gofer"
		}
		u := out[kind]
		u.count++
		u.threads += statusInt(d+"/status", "Threads:")
		sr, err := os.ReadFile(d + "/smaps_rollup")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(sr))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "Rss:":
				u.rss += v
			case "Pss:":
				u.pss += v
			case "Pss_Anon:":
				u.pssAnon += v
			case "Pss_File:":
				u.pssFile += v
			case "Pss_Shmem:":
				u.pssShmem += v
			}
		}
		out[kind] = u
	}
	return out
}

func statusInt(path, key string) int {
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// hostCPU is the host's CPU time in ticks: busy (not idle or iowait) and
// total.
type hostCPU struct{ busy, total int64 }

// cpuTicks reads the host's CPU time and this process's (the agent's).
func cpuTicks() (host hostCPU, self int64) {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		host.total += v
		if i != 3 && i != 4 { // idle, iowait
			host.busy += v
		}
	}
	st, _ := os.ReadFile("/proc/self/stat")
	if _, rest, ok := strings.Cut(string(st), ") "); ok {
		f := strings.Fields(rest)
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			self = u + s
		}
	}
	return host, self
}

// sandboxesCPU is the CPU time (ns) of every sandbox of the tests so far:
// their cgroup parent's usage (cgroup v1 cpuacct or v2 cpu.stat).
func sandboxesCPU() int64 {
	if b, err := os.ReadFile("/sys/fs/cgroup/cpuacct" + testCgroup + "/cpuacct.usage"); err == nil {
		n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return n
	}
	b, _ := os.ReadFile("/sys/fs/cgroup" + testCgroup + "/cpu.stat")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n * 1000
		}
	}
	return 0
}

// openFDs is how many files this process (the agent) has open.
func openFDs() int {
	e, _ := os.ReadDir("/proc/self/fd")
	return len(e)
}

// hostSnapshot is what a host carries that sandboxes add to: its mounts,
// loop devices, network namespaces, links, cgroups under the test parent
// and files under the data dir's sandboxes. Counts, sorted by name.
func hostSnapshot(dataDir string) []string {
	// Only this agent's objects: its data dir's mounts and loop devices,
	// the namespaces and links of its prefix. Other test packages run at
	// the same time and make their own.
	count := func(glob string) int { m, _ := filepath.Glob(glob); return len(m) }
	mounts := 0
	all, _ := os.ReadFile("/proc/self/mounts")
	for _, line := range bytes.SplitAfter(all, []byte("\n")) {
		// runsc mounts the namespace file its gofers join under its root
		// (once or more, newTestHost's cleanup removes it): not a
		// sandbox's.
		if bytes.Contains(line, []byte(dataDir)) && !bytes.Contains(line, []byte("/null-netns ")) {
			mounts++
		}
	}
	var loops int
	backing, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range backing {
		if b, _ := os.ReadFile(f); bytes.HasPrefix(b, []byte(dataDir)) {
			loops++
		}
	}
	return []string{
		fmt.Sprintf("mounts=%d", mounts),
		fmt.Sprintf("loops=%d", loops),
		fmt.Sprintf("netns=%d", count("/var/run/netns/"+testPrefix+"*")),
		fmt.Sprintf("links=%d", count("/sys/class/net/"+testPrefix+"*")),
		fmt.Sprintf("cgroups=%d", count("/sys/fs/cgroup/*"+testCgroup+"/*")),
		fmt.Sprintf("sandbox-files=%d", count(filepath.Join(dataDir, "sandboxes", "*"))),
	}
}

// meminfo returns MemTotal and MemAvailable in bytes.
func meminfo(b *testing.B) (total, avail int64) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "MemTotal:":
			total = v << 10
		case "MemAvailable:":
			avail = v << 10
		}
	}
	return total, avail
}

// readTrim is the content of a small file, trimmed, or the error.
func readTrim(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(b))
}

// BenchmarkBareDensity is BenchmarkDensity's baseline: NESTBOX_DENSITY_N
// (default 20) idle sandboxes of the base template started with runsc
// alone (bareRunner: the same bundle, network and writable layer, no
// agent around them), then the same columns measured once at N: host
// memory per sandbox, the sentry's and gofer's PSS, and the sandboxes'
// idle CPU over 5 s.
func BenchmarkBareDensity(b *testing.B) {
	n := envInt("NESTBOX_DENSITY_N", 20)
	h := newTestHost(b)
	// The agent only builds the template and sets up networks here; its
	// background work has no sandbox of its own to look at.
	ta := h.startAgent(b, "", func(c *Config) {
		c.NetworkCIDR = densityCIDR
		c.TemplateCacheDir = os.Getenv("NESTBOX_TEMPLATE_CACHE_DIR")
	})
	br := newBareRunner(b, h, ta, "base")
	_, before := meminfo(b)
	var ps []barePrepared
	defer func() {
		for _, p := range ps {
			br.release(p)
		}
	}()
	var ds []time.Duration
	for range n {
		p := br.prepare()
		start := time.Now()
		br.run(p)
		ds = append(ds, time.Since(start))
		ps = append(ps, p)
	}
	time.Sleep(2 * time.Second)
	sbx0, t0 := sandboxesCPU(), time.Now()
	time.Sleep(5 * time.Second)
	sbxCPU := 100 * float64(sandboxesCPU()-sbx0) / float64(time.Since(t0))
	_, avail := meminfo(b)
	procs := sandboxProcesses(h.dataDir)
	k := float64(n)
	fmt.Printf("bare runsc, %d idle base sandboxes: run p50 %.0f ms p99 %.0f ms; host %.1f MiB per sandbox; sentry PSS %.1f MiB, gofer PSS %.1f MiB; sandboxes' cpu %.1f %% of a core (%.3f %% each)\n",
		n, pct(ds, 50), pct(ds, 99), float64(before-avail)/k/(1<<20), procs["sentry"].pss/k/1024, procs["gofer"].pss/k/1024, sbxCPU, sbxCPU/k)
	b.ReportMetric(float64(before-avail)/k/(1<<20), "MiB/sandbox")
	b.ReportMetric(sbxCPU/k, "cpu%/sandbox")
}
