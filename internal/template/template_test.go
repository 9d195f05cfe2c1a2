package template

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/testenv"
)

// fakeEnvd is a stand-in binary: the minimal template test checks layout,
// not envd.
func fakeEnvd(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "envd")
	if err := os.WriteFile(p, []byte("\x7fELF not really"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMinimalTemplate(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Missing(t, "busybox-static not installed")
	}
	var progress bytes.Buffer
	s, err := New(Config{Dir: t.TempDir(), Envd: fakeEnvd(t), Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	// What a killed earlier build left behind.
	os.MkdirAll(filepath.Join(s.cfg.Dir, ".build-minimal-dead", "rootfs"), 0o755)
	if _, err := s.Get("minimal"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get before build: %v, want not found", err)
	}
	// Concurrent callers share one build.
	var wg sync.WaitGroup
	paths := make([]string, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); paths[i], errs[i] = s.Ensure(context.Background(), "minimal") }()
	}
	wg.Wait()
	for i := range 4 {
		if errs[i] != nil || paths[i] != s.Path("minimal") {
			t.Fatalf("Ensure %d: %q, %v", i, paths[i], errs[i])
		}
	}
	if n := strings.Count(progress.String(), "building template"); n != 1 {
		t.Fatalf("built %d times, want once:\n%s", n, progress.String())
	}
	root := s.Path("minimal")
	for _, f := range []string{"bin/busybox", "bin/sh", "bin/bash", "usr/bin/envd", "etc/passwd", "home/user"} {
		if _, err := os.Lstat(filepath.Join(root, f)); err != nil {
			t.Errorf("minimal template lacks %s: %v", f, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("/tmp is not sticky: %v %v", fi, err)
	}
	// The shell works in a chroot, and user is uid 1000.
	out, err := exec.Command("chroot", root, "/bin/bash", "-l", "-c", "echo hi; id -u user").CombinedOutput()
	if err != nil || string(out) != "hi\n1000\n" {
		t.Fatalf("chroot shell: %q, %v", out, err)
	}
	info, err := s.Get("minimal")
	if err != nil || info.SizeBytes == 0 || info.EnvdHash == "" {
		t.Fatalf("info: %+v, %v", info, err)
	}
	// No leftovers of the build.
	if m, _ := filepath.Glob(filepath.Join(s.cfg.Dir, ".build-*")); len(m) > 0 {
		t.Fatalf("build leftovers: %v", m)
	}
}

// TestEnvdVersionNeverRunsTheTemplate checks that the version of a
// template's envd comes from its metadata, recorded from the operator's
// binary at build time: the envd inside a template (which a snapshot or a
// tenant's template could replace) is never run on the host.
func TestEnvdVersionNeverRunsTheTemplate(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Missing(t, "busybox-static not installed")
	}
	envd, err := filepath.Abs("../../bin/envd")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(envd, "--version").Output()
	if err != nil {
		testenv.Missing(t, "bin/envd not built (make envd): "+err.Error())
	}
	want := strings.TrimSpace(string(out))
	s, err := New(Config{Dir: t.TempDir(), Envd: envd})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ensure(context.Background(), "minimal"); err != nil {
		t.Fatal(err)
	}
	info, err := s.Get("minimal")
	if err != nil || info.EnvdVersion != want {
		t.Fatalf("info %+v, %v: want envd_version %s", info, err, want)
	}
	// Replace the template's envd with a program that leaves a mark when
	// run, and drop the recorded version as a template built before it
	// was recorded would have.
	mark := filepath.Join(t.TempDir(), "ran")
	inTemplate := filepath.Join(s.Path("minimal"), "usr/bin/envd")
	if err := os.WriteFile(inTemplate, []byte("#!/bin/sh\ntouch "+mark+"\necho evil\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if v := s.EnvdVersion(context.Background(), "minimal"); v != want {
		t.Errorf("EnvdVersion = %q, want the recorded %s", v, want)
	}
	meta := filepath.Join(filepath.Dir(s.Path("minimal")), "template.json")
	info.EnvdVersion = ""
	b, _ := json.Marshal(info)
	if err := os.WriteFile(meta, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if v := s.EnvdVersion(context.Background(), "minimal"); v != want {
		t.Errorf("EnvdVersion of a template without a recorded version = %q, want the configured envd's %s", v, want)
	}
	if _, err := os.Stat(mark); err == nil {
		t.Fatal("the envd inside the template was run on the host")
	}
	if v := s.EnvdVersion(context.Background(), "nope"); v != "" {
		t.Errorf("EnvdVersion of a template not built = %q, want \"\"", v)
	}
}

func TestUnknownTemplate(t *testing.T) {
	s, err := New(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ensure(context.Background(), "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("got %v, want not found", err)
	}
}

func TestFailedBuildLeavesNothing(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	s, err := New(Config{Dir: dir, Envd: filepath.Join(dir, "missing-envd"), Busybox: "/bin/busybox"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ensure(context.Background(), "minimal"); err == nil {
		t.Fatal("build with a missing envd succeeded")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != ".cache" {
			t.Errorf("failed build left %s", e.Name())
		}
	}
}

func TestAptMirrorFindsSuite(t *testing.T) {
	m, err := aptMirror("bookworm")
	if err != nil {
		testenv.Missing(t, "no APT source for bookworm: "+err.Error())
	}
	if !strings.HasPrefix(m, "http") {
		t.Fatalf("mirror %q is not a URL", m)
	}
}

// TestBaseTemplate builds the Debian template with debootstrap from this
// machine's APT mirror. Packages are cached across runs in
// /var/cache/nestbox-test, so only the first run downloads them.
func TestBaseTemplate(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "debootstrap")
	if testing.Short() {
		t.Skip("builds a Debian rootfs (about a minute)")
	}
	var progress bytes.Buffer
	s, err := New(Config{Dir: t.TempDir(), CacheDir: "/var/cache/nestbox-test", Envd: fakeEnvd(t), Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	root, err := s.Ensure(context.Background(), "base")
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	// Progress has a line per phase; debootstrap's output is in the log.
	if !strings.Contains(progress.String(), s.BuildLog("base")) || strings.Contains(progress.String(), "debootstrap") {
		t.Errorf("progress does not name the build log, or has debootstrap's output:\n%s", progress.String())
	}
	if b, err := os.ReadFile(s.BuildLog("base")); err != nil || !strings.Contains(string(b), "debootstrap") {
		t.Errorf("build log: %v\n%s", err, b)
	}
	script := `set -e
id -u user; id -g user; test -d /home/user; stat -c %U /home/user
for c in bash ls ps ip curl git python3 node sudo; do command -v $c >/dev/null || { echo missing $c; exit 1; }; done
test -u /usr/bin/sudo && echo sudo-setuid
test -f /etc/sudoers.d/user && grep -q NOPASSWD /etc/sudoers.d/user && echo sudoers
test -x /usr/bin/envd && echo envd
ls /var/cache/apt/archives/*.deb 2>/dev/null | wc -l`
	out, err := exec.Command("chroot", root, "/bin/bash", "-c", script).CombinedOutput()
	want := "1000\n1000\nuser\nsudo-setuid\nsudoers\nenvd\n0\n"
	if err != nil || string(out) != want {
		t.Fatalf("base template check: %v\ngot:\n%s\nwant:\n%s", err, out, want)
	}
	listRootAsUser(t, root)
}

// listRootAsUser runs `ls -l /` as user in a gVisor sandbox over root and
// fails on any error it prints. gVisor, unlike a chroot, refuses to stat a
// directory the caller may not read, so a 0700 /root made `ls -l /` print
// "/root: Permission denied". Needs runsc: NESTBOX_RUNSC or the repository's
// bin/runsc; run it under flock /tmp/nestbox-gvisor.lock.
func listRootAsUser(t *testing.T, root string) {
	runsc := os.Getenv("NESTBOX_RUNSC")
	if runsc == "" {
		runsc, _ = filepath.Abs("../../bin/runsc")
	}
	if _, err := os.Stat(runsc); err != nil {
		testenv.Missing(t, "no runsc (set NESTBOX_RUNSC or make runsc): "+err.Error())
	}
	cmd := exec.Command(runsc, "--network=none", "--root="+t.TempDir(), "do", "-quiet", "-root", root, "-cwd", "/",
		"/usr/sbin/runuser", "-u", "user", "--", "ls", "-l", "/")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 || !strings.Contains(string(out), " root\n") {
		t.Fatalf("ls -l / as user: %v\nstderr: %s\nstdout:\n%s", err, stderr.String(), out)
	}
}

// A caller waiting for another's build of the same template gives up when
// its context ends instead of hanging until the build is done.
func TestEnsureWaitEndsWithContext(t *testing.T) {
	s, err := New(Config{Dir: t.TempDir(), Envd: fakeEnvd(t)})
	if err != nil {
		t.Fatal(err)
	}
	lock := make(chan struct{}, 1)
	lock <- struct{}{} // a build of minimal is running
	s.building["minimal"] = lock
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Ensure(ctx, "minimal"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ensure while another build runs, after cancel: %v, want context.Canceled", err)
	}
}
