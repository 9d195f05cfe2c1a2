package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"nestbox.dev"
	"nestbox.dev/internal/testenv"
)

// The end-to-end tests' corner of the host: network prefixes and ranges,
// and a cgroup parent, that no other package's tests use.
const (
	e2ePrefix = "nbe"
	e2eCIDR   = "10.215.0.0/22"
	e2eCgroup = "/nestbox-e2e-test"
	// Packages downloaded for the base template, kept between runs.
	e2ePackageCache = "/var/cache/nestbox-test/e2e-packages"
	// Templates, kept between runs; the template store keeps one version
	// per envd in it and removes unused old ones.
	e2eTemplateDir = "/var/cache/nestbox-test/templates"
)

// binaries are the built runsc, envd and (for CLI tests) nestbox.
type binaries struct {
	runsc, envd string
}

// repoRoot is the module's root, two levels above this package.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// requirePlatform checks what running the platform needs: root, and the
// runsc and envd that `make build` makes.
func requirePlatform(t testing.TB) binaries {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "debootstrap")
	testenv.RequireCommand(t, "nft")
	b := binaries{runsc: filepath.Join(repoRoot(), "bin", "runsc"), envd: filepath.Join(repoRoot(), "bin", "envd")}
	for _, p := range []string{b.runsc, b.envd} {
		if _, err := os.Stat(p); err != nil {
			testenv.Missing(t, p+" is not built (run `make build`)")
		}
	}
	return b
}

// platform is a running `nestbox up`.
type platform struct {
	url, key, dataDir string
	client            *nestbox.Client
	stop              func()
	// log is what nestbox up printed, so far.
	log *syncBuffer
}

// templatesOnce serialises the first template build of the tests.
var templatesMu sync.Mutex

// startUp runs `nestbox up` in this process, with its state in a temporary
// directory, and waits until it is ready. At the end of the test it
// destroys every capsule, stops the platform, and checks that nothing is
// left on the host.
func startUp(t testing.TB, extra ...string) *platform {
	t.Helper()
	b := requirePlatform(t)
	dataDir := t.TempDir()
	args := append([]string{
		"--data-dir", dataDir,
		"--listen", "127.0.0.1:0",
		"--agent-listen", "127.0.0.1:0",
		"--runsc", b.runsc,
		"--envd", b.envd,
		"--template-dir", e2eTemplateDir,
		"--template-cache-dir", e2ePackageCache,
		"--templates", "minimal,base",
		"--network-prefix", e2ePrefix,
		"--network-cidr", e2eCIDR,
		"--cgroup-parent", e2eCgroup,
		"--default-rootfs-size", "1Gi",
		"--log-level", "warn",
	}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	templatesMu.Lock() // one template build at a time
	go func() { done <- runUp(ctx, args, &out, &out) }()

	p := &platform{dataDir: dataDir, log: &out}
	deadline := time.Now().Add(15 * time.Minute) // a cold base template build
	for {
		if time.Now().After(deadline) {
			cancel()
			templatesMu.Unlock()
			t.Fatalf("nestbox up did not get ready:\n%s", out.String())
		}
		select {
		case err := <-done:
			cancel()
			templatesMu.Unlock()
			t.Fatalf("nestbox up ended: %v\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if p.url == "" {
			url, key, err := nestbox.LoadCredentials(dataDir)
			if err != nil {
				continue
			}
			p.url, p.key = url, key
		}
		resp, err := http.Get(p.url + "/health")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
	}
	templatesMu.Unlock()
	if !strings.Contains(out.String(), p.key) {
		t.Errorf("nestbox up did not print the new API key:\n%s", out.String())
	}
	var err error
	p.client, err = nestbox.New(nestbox.Config{URL: p.url, APIKey: p.key})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("nestbox up: %v", err)
				}
			case <-time.After(time.Minute):
				t.Error("nestbox up did not stop within a minute")
			}
		})
	}
	t.Cleanup(func() {
		p.destroyAll(t)
		p.stop()
		cleanHost(dataDir)
		if left := leftovers(dataDir); len(left) > 0 {
			t.Errorf("left on the host:\n%s", strings.Join(left, "\n"))
		}
		if t.Failed() {
			t.Logf("nestbox up's output:\n%s", out.String())
		}
	})
	return p
}

// destroyAll destroys every capsule that is not gone and waits for it.
func (p *platform) destroyAll(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for c, err := range p.client.ListAll(ctx, nestbox.ListOptions{}) {
		if err != nil {
			t.Errorf("list capsules: %v", err)
			return
		}
		if !c.Status.Final() {
			if _, err := p.client.Capsule(c.ID).Kill(ctx); err != nil {
				t.Errorf("destroy %s: %v", c.ID, err)
			}
		}
	}
}

// cleanHost removes what runsc and the network leave on the host by design
// once the last sandbox is gone (the nft table, runsc's namespace mount,
// the cgroup parent).
func cleanHost(dataDir string) {
	for range 10 {
		if unix.Unmount(filepath.Join(dataDir, "agent", "runsc", "null-netns"), unix.MNT_DETACH) != nil {
			break
		}
	}
	exec.Command("nft", "delete", "table", "inet", e2ePrefix+"_nestbox").Run()
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + e2eCgroup)
	for _, d := range dirs {
		os.Remove(d)
	}
}

// leftovers lists sandboxes' traces still on the host.
func leftovers(dataDir string) []string {
	var out []string
	if entries, _ := os.ReadDir(filepath.Join(dataDir, "agent", "sandboxes")); len(entries) > 0 {
		out = append(out, fmt.Sprintf("%d sandbox directories", len(entries)))
	}
	if nss, _ := filepath.Glob("/var/run/netns/" + e2ePrefix + "-*"); len(nss) > 0 {
		out = append(out, fmt.Sprintf("network namespaces: %v", nss))
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte(dataDir)) && !strings.HasSuffix(filepath.Dir(f), fmt.Sprint(os.Getpid())) {
			out = append(out, "process: "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
