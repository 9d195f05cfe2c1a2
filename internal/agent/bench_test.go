package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/network"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/rootfs"
)

// reportPercentiles reports the p50 and p99 of ds in milliseconds.
func reportPercentiles(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(p int) float64 { return float64(ds[(len(ds)-1)*p/100]) / float64(time.Millisecond) }
	b.ReportMetric(at(50), "p50-ms")
	b.ReportMetric(at(99), "p99-ms")
}

// BenchmarkCreate measures CreateSandbox through the agent's API, from
// the request until it returns (envd answers and is initialised), per
// template. Compare with BenchmarkBareRunsc for the agent's overhead.
func BenchmarkCreate(b *testing.B) {
	for _, tpl := range []string{"minimal", "base"} {
		b.Run(tpl, func(b *testing.B) { benchCreate(b, tpl) })
	}
}

func benchCreate(b *testing.B, template string) {
	h := newTestHost(b)
	ta := h.startAgent(b, "", nil)
	ta.destroyRPC(b, ta.create(b, &agentpb.SandboxConfig{Template: template}).Id) // builds the template
	var ds []time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		sb := ta.create(b, &agentpb.SandboxConfig{Template: template})
		ds = append(ds, time.Since(start))
		b.StopTimer()
		ta.destroyRPC(b, sb.Id)
		b.StartTimer()
	}
	b.StopTimer()
	reportPercentiles(b, ds)
}

// BenchmarkDestroy measures DestroySandbox through the agent's API.
func BenchmarkDestroy(b *testing.B) {
	h := newTestHost(b)
	ta := h.startAgent(b, "", nil)
	var ds []time.Duration
	b.StopTimer()
	for range b.N {
		sb := ta.create(b, &agentpb.SandboxConfig{})
		b.StartTimer()
		start := time.Now()
		ta.destroyRPC(b, sb.Id)
		ds = append(ds, time.Since(start))
		b.StopTimer()
	}
	reportPercentiles(b, ds)
}

// BenchmarkBareRunsc measures `runsc run -detach` of the bundle the agent
// would use, on a network and writable layer prepared beforehand, until
// envd answers /health: the floor under BenchmarkCreate.
func BenchmarkBareRunsc(b *testing.B) {
	for _, tpl := range []string{"minimal", "base"} {
		b.Run(tpl, func(b *testing.B) { benchBareRunsc(b, tpl) })
	}
}

func benchBareRunsc(b *testing.B, template string) {
	h := newTestHost(b)
	ta := h.startAgent(b, "", nil)
	br := newBareRunner(b, h, ta, template)
	var ds []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		p := br.prepare()
		b.StartTimer()
		start := time.Now()
		br.run(p)
		ds = append(ds, time.Since(start))
		b.StopTimer()
		br.release(p)
		b.StartTimer()
	}
	b.StopTimer()
	reportPercentiles(b, ds)
}

// bareRunner starts sandboxes of a template with runsc alone, as a
// baseline: the network and the writable layer made as the agent makes
// them, the bundle the driver wrote for a first sandbox (with its ID and
// paths replaced), `runsc run -detach`, and envd's /health. No state
// file, no events, no crash probes, no metrics samples.
type bareRunner struct {
	b         *testing.B
	h         *testHost
	ta        *testAgent
	tpl       string
	size      int64
	runscRoot string
	bareDir   string
	first     barePrepared
	files     map[string]string
}

type barePrepared struct {
	id, dir string
	net     network.Sandbox
	layer   rootfs.Layer
}

func newBareRunner(b *testing.B, h *testHost, ta *testAgent, template string) *bareRunner {
	ctx := context.Background()
	tpl, err := ta.templates.Ensure(ctx, template)
	if err != nil {
		b.Fatal(err)
	}
	info, err := ta.templates.Get(template)
	if err != nil {
		b.Fatal(err)
	}
	br := &bareRunner{b: b, h: h, ta: ta, tpl: tpl, size: rootfs.Size(256<<20, info.SizeBytes),
		runscRoot: filepath.Join(h.dataDir, "runsc"), bareDir: filepath.Join(h.dataDir, "bare")}
	os.MkdirAll(br.bareDir, 0o700)
	// The driver writes the bundle once; each run gets a copy with its own
	// ID and paths.
	first := br.prepare()
	spec := driver.Spec{ID: first.id, Dir: first.dir, Rootfs: first.layer.Root, NetNS: first.net.NetNS,
		VCPUs: DefaultVCPUs, MemoryMB: 256, Args: []string{"/usr/bin/envd"}}
	if err := ta.driver.Create(ctx, spec); err != nil {
		b.Fatal(err)
	}
	br.files = map[string]string{}
	for _, name := range []string{"bundle/config.json", "resolv.conf", "hosts"} {
		data, err := os.ReadFile(filepath.Join(first.dir, name))
		if err != nil {
			b.Fatal(err)
		}
		br.files[name] = string(data)
	}
	br.first = first
	br.release(first)
	return br
}

// prepare makes a sandbox's directory, network and writable layer.
func (br *bareRunner) prepare() barePrepared {
	ctx := context.Background()
	p := barePrepared{id: capsulespec.NewID()}
	p.dir = filepath.Join(br.bareDir, p.id)
	if err := os.Mkdir(p.dir, 0o700); err != nil {
		br.b.Fatal(err)
	}
	var err error
	if p.net, err = br.ta.net.Setup(ctx, p.id, network.Options{}); err != nil {
		br.b.Fatal(err)
	}
	if p.layer, err = rootfs.Mount(ctx, br.tpl, p.dir, br.size); err != nil {
		br.b.Fatal(err)
	}
	return p
}

// run starts p with runsc and waits for envd's /health.
func (br *bareRunner) run(p barePrepared) {
	ctx := context.Background()
	os.MkdirAll(filepath.Join(p.dir, "bundle"), 0o700)
	for name, data := range br.files {
		data = strings.ReplaceAll(strings.ReplaceAll(data, br.first.dir, p.dir), br.first.id, p.id)
		if err := os.WriteFile(filepath.Join(p.dir, name), []byte(data), 0o644); err != nil {
			br.b.Fatal(err)
		}
	}
	console, _ := os.Create(filepath.Join(p.dir, "console.log"))
	defer console.Close()
	cmd := exec.Command(br.h.p.runsc, "--root="+br.runscRoot, "--platform=systrap", "--overlay2=none", "--allow-suid",
		"--log="+filepath.Join(p.dir, "runsc.log"), "run", "-detach", "-bundle", filepath.Join(p.dir, "bundle"), p.id)
	cmd.Stdout, cmd.Stderr = console, console
	if err := cmd.Run(); err != nil {
		br.b.Fatalf("runsc run: %v", err)
	}
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := br.ta.envd.waitHealthy(hctx, p.net.Addr())
	cancel()
	if err != nil {
		br.b.Fatalf("envd: %v", err)
	}
}

// release removes p: its runtime, layer, network and directory.
func (br *bareRunner) release(p barePrepared) {
	ctx := context.Background()
	exec.Command(br.h.p.runsc, "--root="+br.runscRoot, "delete", "-force", p.id).Run()
	rootfs.Unmount(ctx, p.layer)
	br.ta.net.Teardown(ctx, p.net)
	os.RemoveAll(p.dir)
}
