package template

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"nestbox.dev/internal/testenv"
)

func TestOverlayLowerDirs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mountinfo")
	os.WriteFile(p, []byte(`22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
90 22 0:50 / /data/sb/a/root rw,relatime - overlay overlay rw,lowerdir=/t/base@aaa/rootfs,upperdir=/data/sb/a/up,workdir=/data/sb/a/work
91 22 0:51 / /data/sb/b/root rw,relatime - overlay overlay rw,lowerdir=/t/x/rootfs:/t/y/rootfs/,upperdir=/u,workdir=/w
92 22 0:52 / /mnt rw - tmpfs tmpfs rw,lowerdir=/not/overlay
`), 0o644)
	got, err := overlayLowerDirs(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/t/base@aaa/rootfs", "/t/x/rootfs", "/t/y/rootfs"}
	if len(got) != len(want) {
		t.Fatalf("lower dirs %v, want %v", got, want)
	}
	for _, d := range want {
		if !got[d] {
			t.Errorf("lower dir %s missing from %v", d, got)
		}
	}
}

// TestNewEnvdMakesNewVersion: a changed envd gets a new template version;
// the old one stays while an overlay uses it and goes at the next use after
// that, as does a template of the layout before versions.
func TestNewEnvdMakesNewVersion(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Missing(t, "busybox-static not installed")
	}
	dir := t.TempDir()
	envd := fakeEnvd(t)
	s, err := New(Config{Dir: dir, Envd: envd})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	oldRoot, err := s.Ensure(ctx, "minimal")
	if err != nil {
		t.Fatal(err)
	}
	// A template of the layout before versions, unused.
	legacy := filepath.Join(dir, "minimal", "rootfs")
	os.MkdirAll(legacy, 0o755)

	// A sandbox's overlay over the old version.
	work := t.TempDir()
	merged, upper, wdir := filepath.Join(work, "m"), filepath.Join(work, "u"), filepath.Join(work, "w")
	for _, d := range []string{merged, upper, wdir} {
		os.MkdirAll(d, 0o755)
	}
	if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+oldRoot+",upperdir="+upper+",workdir="+wdir); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	mounted := true
	defer func() {
		if mounted {
			unix.Unmount(merged, unix.MNT_DETACH)
		}
	}()

	if err := os.WriteFile(envd, []byte("\x7fELF a newer envd"), 0o755); err != nil {
		t.Fatal(err)
	}
	newRoot, err := s.Ensure(ctx, "minimal")
	if err != nil {
		t.Fatal(err)
	}
	if newRoot == oldRoot || newRoot != s.Path("minimal") {
		t.Fatalf("after envd changed: %s (old %s, Path %s); want a new version", newRoot, oldRoot, s.Path("minimal"))
	}
	if b, _ := os.ReadFile(filepath.Join(newRoot, "usr/bin/envd")); string(b) != "\x7fELF a newer envd" {
		t.Fatalf("the new version has envd %q", b)
	}
	if _, err := os.Stat(oldRoot); err != nil {
		t.Fatalf("the old version, still mounted, was removed: %v", err)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Fatalf("the unused template of the old layout is still there: %v", err)
	}
	if info, err := s.Get("minimal"); err != nil || info.EnvdHash[:versionLen] != filepath.Base(filepath.Dir(newRoot))[len("minimal@"):] {
		t.Fatalf("Get: %+v, %v; want the new version", info, err)
	}

	if err := unix.Unmount(merged, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	if _, err := s.Ensure(ctx, "minimal"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(oldRoot)); !os.IsNotExist(err) {
		t.Fatalf("the old version outlived its last sandbox: %v", err)
	}
}

// TestPruneKeepsWhatSandboxesHold: a version that Config.InUse lists (a
// paused sandbox's, with no overlay mounted) is kept; an error keeps every
// version; an unlisted, unmounted one goes.
func TestPruneKeepsWhatSandboxesHold(t *testing.T) {
	dir := t.TempDir()
	old, cur := filepath.Join(dir, "minimal@aaaa"), filepath.Join(dir, "minimal@bbbb")
	for _, d := range []string{old, cur} {
		if err := os.MkdirAll(filepath.Join(d, "rootfs"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var held []string
	var heldErr error
	s, err := New(Config{Dir: dir, InUse: func() ([]string, error) { return held, heldErr }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		held     []string
		err      error
		wantKept bool
	}{
		{"held by a paused sandbox", []string{filepath.Join(old, "rootfs") + "/"}, nil, true},
		{"the holders cannot be read", nil, os.ErrPermission, true},
		{"held by nobody", []string{filepath.Join(cur, "rootfs")}, nil, false},
	} {
		held, heldErr = tc.held, tc.err
		s.prune("minimal", cur)
		_, err := os.Stat(old)
		if kept := err == nil; kept != tc.wantKept {
			t.Fatalf("%s: old version kept=%v, want %v", tc.name, kept, tc.wantKept)
		}
		if _, err := os.Stat(cur); err != nil {
			t.Fatalf("%s: the current version is gone: %v", tc.name, err)
		}
	}
}
